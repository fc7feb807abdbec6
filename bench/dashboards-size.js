#!/usr/bin/env node
// The dashboards' size budget: all JavaScript the first page loads (the entry script and the
// chunks it imports statically, per the Vite manifest of index.html) must stay ≤ 150 KB gzipped.
// Chunks loaded on demand (Arrow export) are listed apart. Builds first when the build is stale.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ensureDashboards } from '../bin/dashboards.js';

export const BUDGET_BYTES = 150 * 1024;

export function measureDashboards() {
  const dist = fileURLToPath(new URL('../dashboards/dist/', import.meta.url));
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  const first = [...html.matchAll(/<script[^>]+src="\/assets\/([^"]+\.js)"/g)].map((m) => m[1]);
  const preloads = [...html.matchAll(/<link[^>]+rel="modulepreload"[^>]+href="\/assets\/([^"]+\.js)"/g)].map(
    (m) => m[1],
  );
  const initial = new Set([...first, ...preloads]);
  const files = readdirSync(join(dist, 'assets'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => {
      const raw = readFileSync(join(dist, 'assets', f));
      return {
        file: f,
        bytes: raw.length,
        gzip: gzipSync(raw, { level: 9 }).length,
        initial: initial.has(f),
      };
    });
  const firstPageGzip = files.filter((f) => f.initial).reduce((a, f) => a + f.gzip, 0);
  return {
    files,
    firstPageGzip,
    budget: BUDGET_BYTES,
    ok: firstPageGzip <= BUDGET_BYTES && first.length > 0,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  ensureDashboards();
  const r = measureDashboards();
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  console.log('file'.padEnd(32), 'raw'.padStart(10), 'gzip'.padStart(10), ' loaded');
  for (const f of r.files)
    console.log(
      f.file.padEnd(32),
      kb(f.bytes).padStart(10),
      kb(f.gzip).padStart(10),
      f.initial ? ' first page' : ' on demand',
    );
  console.log(
    `first page JavaScript: ${kb(r.firstPageGzip)} gzipped (budget ${kb(r.budget)}) ${r.ok ? 'OK' : 'OVER BUDGET'}`,
  );
  process.exitCode = r.ok ? 0 : 1;
}
