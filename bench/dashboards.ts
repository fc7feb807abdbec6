// How fast each dashboards page shows its data, in Chromium, against Parley on the embedded
// defaults filled by the simulator. Per page: the time from navigation to the data on screen,
// beside the time the API alone takes for the same data (the baseline measured in the same run;
// the page's overhead is the difference). Budget: 1,500 ms per page.
//
//   node bench/run.js dashboards [--users 1100000] [--days 30] [--runs 3] [--data-dir DIR]
//
// About 9 events per simulated user: the default makes about 10M events. Needs /usr/bin/chromium.
// With --data-dir, the data directory is kept: a later run with the same directory reuses the
// simulated events (and their time range) instead of simulating them again.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { ensureDashboards } from '../bin/dashboards.js';
import { startParley } from '../bin/server.ts';
import { runSimulation } from '../bin/simulate.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { pageFunnel, pageRange } from './page-requests.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1100000' },
    days: { type: 'string', default: '30' },
    runs: { type: 'string', default: '3' },
    'data-dir': { type: 'string' },
  },
});
const RUNS = Number(values.runs);
const BUDGET_MS = 1500;
const key = `pk_bench_admin_${Date.now()}_0123456789`;

ensureDashboards();
const keep = values['data-dir'];
const dir = keep ?? (await mkdtemp(join(tmpdir(), 'parley-bench-dashboards-')));
if (keep) await mkdir(keep, { recursive: true });
// What a kept directory holds: the simulation's parameters, its clock and what it stored.
type Filled = { users: number; days: number; now: number; accepted: number };
const marker = join(dir, 'bench-dashboards.json');
const filled: Filled | undefined = existsSync(marker)
  ? JSON.parse(await readFile(marker, 'utf8'))
  : undefined;
if (filled && (filled.users !== Number(values.users) || filled.days !== Number(values.days)))
  throw new Error(
    `${dir} holds ${filled.users} users over ${filled.days} days: pass those, or another --data-dir`,
  );
const config = parseConfig({
  PARLEY_DATA_DIR: dir,
  PARLEY_PORT: '0',
  PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
});
const started = performance.now();
const running = await startParley(config, { logger: createLogger({ level: 'warn' }), out: () => {} });
const listeningMs = performance.now() - started;
const url = running.url;
const metrics = async () =>
  (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
const data: Filled = filled ?? {
  users: Number(values.users),
  days: Number(values.days),
  now: Date.now(),
  accepted: 0,
};
if (!filled) {
  const sim = await runSimulation({
    url,
    key,
    businesses: 20,
    users: data.users,
    days: data.days,
    now: data.now,
    seed: 'bench-dashboards',
    concurrency: 4,
  });
  data.accepted = sim.accepted;
  for (;;) {
    if (Number(/^parley_sink_rows_total (\d+)/m.exec(await metrics())?.[1] ?? 0) >= sim.accepted) break;
    await new Promise((r) => setTimeout(r, 500));
  }
}
// Pages are timed on a server that has caught up: every processor (the attribution credits the
// reports read included) and the decision engine, which reads the events topic at start and
// shares the process (and its event loop) with the API.
for (;;) {
  const text = await metrics();
  const lags = [...text.matchAll(/^parley_processor_lag_messages\{[^}]*\} (\d+)/gm)];
  const engineReady = /^parley_decision_engine_ready 1$/m.test(text);
  if (engineReady && lags.length > 0 && lags.every((m) => m[1] === '0')) break;
  await new Promise((r) => setTimeout(r, 500));
}
const caughtUpMs = performance.now() - started;
if (keep && !filled) await writeFile(marker, JSON.stringify(data));

const { from, to, dates } = pageRange(data.now);
const funnel = pageFunnel(data.now);
const api = (path: string, body?: unknown) =>
  fetch(`${url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then((r) => r.json());
const MODELS = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based'];
const range = { from, to, click_window_seconds: 604_800, view_window_seconds: 86_400 };

// Each page: its URL, what shows that its data is on screen, and the API calls it needs.
const pages = [
  {
    // The widest window the page offers (its default is 180 minutes back from now, which on a
    // data set filled earlier can hold nothing): a day back from now.
    name: 'overview',
    path: '/overview?minutes=1440',
    ready: 'main table tbody tr',
    api: () => api('/v1/stats/overview?minutes=1440'),
  },
  {
    name: 'funnels',
    path: `/funnels?steps=${encodeURIComponent(JSON.stringify(funnel.steps))}&${dates}`,
    ready: '[data-testid=funnel-result]',
    api: () => api('/v1/reports/funnel', funnel),
  },
  {
    name: 'attribution',
    path: `/attribution?${dates}`,
    ready: '[data-testid=attribution-table] tbody tr',
    api: () => api('/v1/reports/attribution/models', { ...range, models: MODELS }),
  },
  {
    name: 'campaigns',
    path: `/campaigns?${dates}`,
    ready: '[data-testid=campaigns-table] tbody tr',
    api: () =>
      Promise.all([
        api('/v1/campaigns'),
        api(`/v1/reports/campaigns?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`),
      ]),
  },
  {
    name: 'events',
    path: '/events',
    ready: '[data-testid=events-table] tbody tr',
    api: () => api('/v1/events?limit=50'),
  },
];

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await ctx.newPage();
await page.goto(`${url}/`);
await page.getByLabel('API key').fill(key);
await page.getByRole('button', { name: 'Sign in' }).click();
await page.getByRole('button', { name: 'Sign out' }).waitFor();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: (string | number)[][] = [['page', 'page ms', 'API ms', 'page − API ms', 'budget ms', 'within']];
for (const p of pages) {
  const pageMs: number[] = [];
  const apiMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await p.api();
    apiMs.push(performance.now() - t);
    await page.goto(`${url}${p.path}`);
    await page.locator(p.ready).first().waitFor({ timeout: 120_000 });
    // Since the navigation started, by the page's own clock.
    pageMs.push(await page.evaluate(() => performance.now()));
  }
  const pm = median(pageMs);
  const am = median(apiMs);
  rows.push([
    p.name,
    Math.round(pm),
    Math.round(am),
    Math.round(pm - am),
    BUDGET_MS,
    pm <= BUDGET_MS ? 'yes' : 'NO',
  ]);
}
printTable(
  `Dashboards: time to data on screen, median of ${RUNS} (${data.accepted.toLocaleString('en-US')} events, ${data.users} users, ${data.days} days${filled ? `, reused from ${dir}` : ''})`,
  rows,
);
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
console.log(
  `Server start: listening after ${s(listeningMs)}, caught up (processors and decision engine) after ${s(caughtUpMs)}${filled ? '' : ' (simulation included)'}; pages timed after that.`,
);
await browser.close();
await running.stop();
if (!keep) await rm(dir, { recursive: true, force: true });
