#!/usr/bin/env node
// Builds the dashboards (dashboards/ → dashboards/dist/) with Vite when the build is missing or
// older than its sources. Run by `npm ci`/`npm install` (prepare) and by `parley start`, so a
// fresh clone needs no step of its own. Where Vite is not installed (an image built with
// --omit=dev carries a prebuilt dist), it says so and leaves dist as it is.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The checkout's root: the nearest folder above holding package.json (this file also runs from dist/bin/).
function packageRoot(from) {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return from;
  }
}
const root = packageRoot(fileURLToPath(new URL('.', import.meta.url)));
const app = join(root, 'dashboards');
const built = join(app, 'dist', 'index.html');

function newest(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((f) => newest(join(path, f))));
}

export function dashboardsStale() {
  if (!existsSync(built)) return true;
  const sources = ['src', 'index.html', 'vite.config.ts', 'tsconfig.json'].map((f) => join(app, f));
  return Math.max(...sources.filter(existsSync).map(newest)) > statSync(built).mtimeMs;
}

/** Builds when stale; returns what it did. Throws when a needed build fails. */
export function ensureDashboards({ force = false, out = (l) => process.stderr.write(`${l}\n`) } = {}) {
  if (!force && !dashboardsStale()) return 'fresh';
  let vite;
  try {
    vite = join(
      dirname(createRequire(join(root, 'package.json')).resolve('vite/package.json')),
      'bin',
      'vite.js',
    );
  } catch {
    if (existsSync(built)) return 'kept';
    out('dashboards: not built and Vite is not installed (install dev dependencies: npm ci)');
    return 'missing';
  }
  out('dashboards: building (vite build dashboards)...');
  const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], {
    cwd: app,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error(`building the dashboards failed (exit ${r.status ?? r.signal})`);
  return 'built';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  ensureDashboards({ force: process.argv.includes('--force') });
}
