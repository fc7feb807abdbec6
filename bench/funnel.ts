// Where the funnels page's statement spends its time, straight against the embedded engine on a
// data directory kept by the dashboards bench (`node bench/run.js dashboards --data-dir DIR`, or
// any Parley data directory: the range is then the 30 days up to its newest event):
// the statement the API runs for the page, beside ClickHouse's own windowFunnel over the same
// rows (users per step only, no medians: the floor for a funnel over raw events) and the stages
// every such funnel pays (reading the rows; gathering each user's events into one array, on
// user_id and, in the sort key's order, on business_id and user_id).
//
//   node bench/run.js funnel --data-dir DIR [--runs 3]
//
// CPU is this process's (the engine runs in it): other work on a shared machine inflates wall
// time far more than CPU time, so compare CPU across runs. Only one process may open DIR at once.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildFunnelQuery, funnelRequestSchema } from '../core/reports/funnel.ts';
import { createStore } from '../core/store/client.ts';
import { pageFunnel } from './page-requests.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: { 'data-dir': { type: 'string' }, runs: { type: 'string', default: '3' } },
});
const dir = values['data-dir'];
if (!dir) {
  console.error(
    'usage: node bench/run.js funnel --data-dir DIR [--runs 3] (DIR kept by the dashboards bench)',
  );
  process.exit(2);
}
const RUNS = Number(values.runs);
const store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
const db = store.database;
// The dashboards bench's clock when it kept DIR; in any other Parley data directory, the newest
// event's time.
const now = await readFile(join(dir, 'bench-dashboards.json'), 'utf8').then(
  (text) => (JSON.parse(text) as { now: number }).now,
  async () =>
    Number(
      (
        await store.rows<{ now: number }>({
          query: `SELECT toUnixTimestamp64Milli(max(occurred_at)) AS now FROM ${db}.events`,
        })
      )[0].now,
    ),
);

const r = funnelRequestSchema.parse(pageFunnel(now));
const types = r.steps.map((s) => s.type);
const params = { from: r.from, to: r.to, types, window: r.window_seconds * 1000 };
const scope = `occurred_at >= fromUnixTimestamp64Milli({from:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64}) AND type IN {types:Array(String)}`;
const ms = 'toInt64(toUnixTimestamp64Milli(occurred_at))';
const statements: { name: string; query: string; query_params: Record<string, unknown> }[] = [
  { name: "funnel, the page's statement", ...buildFunnelQuery(db, r) },
  {
    name: 'windowFunnel, same rows (users per step only)',
    query: `SELECT level, count() AS users FROM (
  SELECT user_id, windowFunnel({window:UInt64}, 'strict_increase')(toUInt64(${ms}), ${types.map((t) => `type = '${t}'`).join(', ')}) AS level
  FROM ${db}.events WHERE ${scope} GROUP BY user_id
) GROUP BY level ORDER BY level`,
    query_params: params,
  },
  {
    name: 'stage: read the rows',
    query: `SELECT count() AS rows, max(user_id) AS u, sum(${ms}) AS t FROM ${db}.events WHERE ${scope}`,
    query_params: params,
  },
  {
    name: 'stage: + one array per user_id',
    query: `SELECT count() AS keys, sum(length(ev)) AS rows FROM (
  SELECT user_id, arraySort(groupArray(${ms})) AS ev FROM ${db}.events WHERE ${scope} GROUP BY user_id)`,
    query_params: params,
  },
  {
    name: 'stage: + one array per (business_id, user_id), in sort-key order',
    query: `SELECT count() AS keys, sum(length(ev)) AS rows FROM (
  SELECT business_id, user_id, arraySort(groupArray(${ms})) AS ev FROM ${db}.events WHERE ${scope}
  GROUP BY business_id, user_id SETTINGS optimize_aggregation_in_order = 1)`,
    query_params: params,
  },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: (string | number)[][] = [['statement', 'CPU ms', 'wall ms', 'result']];
for (const s of statements) {
  const cpu: number[] = [];
  const wall: number[] = [];
  let result = '';
  for (let i = 0; i < RUNS; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    const out = await store.rows<Record<string, unknown>>({ query: s.query, query_params: s.query_params });
    wall.push(performance.now() - t);
    const used = process.cpuUsage(c);
    cpu.push((used.user + used.system) / 1000);
    result = summary(out);
  }
  rows.push([s.name, Math.round(median(cpu)), Math.round(median(wall)), result]);
}
printTable(`The funnels page's statement and its stages (median of ${RUNS} runs)`, rows);
console.log(`funnel users per step agree with windowFunnel: ${rows[1][3] === rows[2][3] ? 'yes' : 'NO'}`);
await store.close();

function summary(out: Record<string, unknown>[]) {
  if (out[0] && 'users' in out[0] && Array.isArray(out[0].users))
    return (out[0].users as number[]).join(' > ');
  if (out[0] && 'level' in out[0]) {
    // Users reaching at least each step, to compare with the funnel's.
    return types
      .map((_, k) => out.filter((x) => Number(x.level) > k).reduce((a, x) => a + Number(x.users), 0))
      .join(' > ');
  }
  return Object.entries(out[0] ?? {})
    .filter(([k]) => k !== 'u' && k !== 't')
    .map(([k, v]) => `${Number(v).toLocaleString('en')} ${k}`)
    .join(', ');
}
