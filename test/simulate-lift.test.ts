import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatLiftSummary, liftUplifts, runLift } from '../bin/sim/lift.ts';
import { type Running, startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';

// `parley simulate --lift` against a real Parley (embedded engine and log): the offer markers go
// through ingest, the bus and the sink, and the lift report counts every simulated user.

const KEY = 'sim-admin-key-0123456789abcdef';
let dir: string;
let running: Running;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-sim-lift-'));
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_SINK_BATCH_WAIT_MS: '50',
    PARLEY_API_KEYS: JSON.stringify([{ key: KEY, role: 'admin' }]),
  });
  running = await startParley(config, { logger: createLogger({ level: 'silent' }), out: () => {} });
});

afterAll(async () => {
  await running?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('parley simulate --lift', () => {
  it('sends the scenario through ingest and prints the report beside the truth', async () => {
    const r = await runLift({ url: running.url, key: KEY, seed: 'l1', users: 400, campaigns: 2 });
    expect(liftUplifts(2)).toEqual([0, 0.05]);
    expect(r.rows.map((x) => x.truth.relative)).toEqual([0, 0.45]);
    for (const { truth, report } of r.rows) {
      expect(report.control.users + report.treatment.users).toBe(400);
      expect(report.control.users).toBe(truth.users.control);
    }
    // The zero-effect campaign is still credited by last touch.
    expect(r.rows[0].report.last_touch_conversions).toBeGreaterThan(0);
    const text = formatLiftSummary(r);
    expect(text).toContain('true lift');
    expect(text).toContain(r.rows[1].campaign_id);
  });
});
