// What one call into the embedded engine costs in CPU (every thread of this process), whatever its
// size: a query, a one-row insert into each table the ingest path writes, and a 20,000-row insert
// into `events`, whose per-row cost is the baseline the fixed costs are set against.
//
//   node bench/run.js store-calls [--calls 15]
//
// Merges are stopped on the tables written, so that only the calls themselves are counted.

import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { normalizeEvent } from '../core/events/normalize.ts';
import { benchStore } from './store.ts';
import { printTable } from './table.ts';
import { simEvents } from './traffic.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '15' } } });
const CALLS = Number(values.calls);
const ROWS = 20_000;
// The sink's settings for its inserts (processors/sink.ts, core/events/dedup.ts).
const EVENTS_SETTINGS = {
  input_format_json_read_objects_as_strings: 1,
  input_format_skip_unknown_fields: 1,
  date_time_input_format: 'best_effort',
  optimize_on_insert: 0,
};
const REGISTRY_SETTINGS = { date_time_input_format: 'best_effort', optimize_on_insert: 0 };

const { store, dataDir } = await benchStore('store-calls');
const db = store.database;
for (const t of ['events', 'event_ids', 'conversion_currencies', 'attribution_touches'])
  await store.client.command({ query: `SYSTEM STOP MERGES ${db}.${t}` });

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
let n = 0;
const eventLines = (count: number) => {
  const evs = simEvents(count, 'store-calls', (i) => `sc-${n}-${i}`, Date.now());
  n++;
  const lines = evs.map((e) => {
    const r = normalizeEvent(e, { now: Date.now(), maxFutureMs: 300_000, keywords: [] });
    if (!r.ok) throw new Error(r.error);
    return JSON.stringify(r.value);
  });
  return Buffer.from(`${lines.join('\n')}\n`);
};
const now = () => new Date().toISOString().replace('T', ' ').replace('Z', '');

const calls: [string, number, () => Promise<unknown>][] = [
  ['query: SELECT 1', 0, () => store.rows({ query: 'SELECT 1' })],
  [
    'insert 1 row into event_ids (TabSeparated)',
    1,
    () =>
      store.insertTsv(
        `${db}.event_ids`,
        ['event_id', 'bus_partition', 'bus_offset', 'accepted_at'],
        Buffer.from(`sc-${n++}\t0\t1\t${now()}\n`),
        REGISTRY_SETTINGS,
      ),
  ],
  [
    'insert 1 row into attribution_touches',
    1,
    () =>
      store.insertJsonLines(
        `${db}.attribution_touches`,
        Buffer.from(
          `${JSON.stringify({ event_id: `sc-${n++}`, type: 'order.placed', occurred_at: now(), business_id: 'b', user_id: 'u', campaign_id: '', value: 1 })}\n`,
        ),
        { date_time_input_format: 'best_effort' },
      ),
  ],
  [
    'insert 1 row into events',
    1,
    () => store.insertJsonLines(`${db}.events`, eventLines(1), EVENTS_SETTINGS),
  ],
];

const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const results: [string, number, number][] = [];
// The baseline: a sink-sized insert into events, per row and per call.
{
  const costs: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const data = eventLines(ROWS);
    const c0 = cpuMs();
    await store.insertJsonLines(`${db}.events`, data, EVENTS_SETTINGS);
    costs.push(cpuMs() - c0);
  }
  results.push([`insert ${ROWS.toLocaleString('en')} rows into events (baseline)`, ROWS, medianOf(costs)]);
}
for (const [name, rows, call] of calls) {
  const costs: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const c0 = cpuMs();
    await call();
    costs.push(cpuMs() - c0);
  }
  results.push([name, rows, medianOf(costs)]);
}
const base = results[0][2];
printTable(
  `engine calls on the embedded store: median CPU of ${CALLS} calls each (all threads), merges stopped`,
  [
    ['call', 'rows', 'CPU ms per call', 'of the baseline call', 'µs per row'],
    ...results.map(([name, rows, ms]) => [
      name,
      rows,
      ms.toFixed(1),
      (ms / base).toFixed(3),
      rows ? ((ms * 1000) / rows).toFixed(2) : '-',
    ]),
  ],
);
console.log(
  `a one-row insert into events costs as much CPU as ${Math.round((results[4][2] * ROWS) / base).toLocaleString('en')} rows of a ${ROWS.toLocaleString('en')}-row insert`,
);
await store.close();
await rm(dataDir, { recursive: true, force: true });
