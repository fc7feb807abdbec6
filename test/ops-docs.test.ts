import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { createMetrics } from '../core/metrics.ts';
import { ROOT } from './helpers/process.ts';

// The example alerting rules name only metrics Parley serves.

it('docs/prometheus-alerts.yml uses only metrics Parley serves', async () => {
  const rules = await readFile(`${ROOT}docs/prometheus-alerts.yml`, 'utf8');
  const served = (await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name);
  const used = new Set(
    [...rules.matchAll(/\bparley_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')),
  );
  expect(used.size).toBeGreaterThan(5);
  for (const name of used) expect(served, name).toContain(name);
});
