// Report latency on the embedded defaults over generated events: a 4-step funnel (Parley's one
// statement, ordered mode, with medians) against ClickHouse's own windowFunnel for the same steps
// on the same rows in the same process (the baseline; the ratio is what to compare across runs),
// and a linear attribution at the default windows (SQL path).
//
//   node bench/run.js reports [--events 10000000] [--runs 3]
//
// The events are generated inside ClickHouse with numbers(): 100 events per user on average, each
// user in one of 100 businesses, over 30 days; types weighted like a chat ad funnel.

import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { attributionRequestSchema, buildAttributionQuery } from '../core/reports/attribution.ts';
import { buildFunnelQuery, funnelRequestSchema } from '../core/reports/funnel.ts';
import { benchStore } from './store.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: { events: { type: 'string', default: '10000000' }, runs: { type: 'string', default: '3' } },
});
const N = Number(values.events);
const RUNS = Number(values.runs);
const USERS = Math.max(1, Math.round(N / 100));
const DAYS = 30;
const T0 = Date.parse('2026-03-01T00:00:00Z');

const { store, dataDir } = await benchStore('reports');
const db = store.database;

const genStart = performance.now();
await store.client.command({
  query: `INSERT INTO ${db}.events (event_id, type, occurred_at, business_id, user_id, thread_id, channel, props, ingested_at)
SELECT
  concat('e', toString(number)) AS event_id,
  multiIf(r < 45, 'message.received', r < 65, 'message.sent', r < 85, 'sponsored.served', r < 93, 'sponsored.clicked', r < 97, 'order.placed', 'lead.submitted') AS type,
  fromUnixTimestamp64Milli(toInt64(${T0} + cityHash64(number, 'time') % ${DAYS * 86_400_000})) AS occurred_at,
  concat('b', toString(u % 100)) AS business_id,
  concat('u', toString(u)) AS user_id,
  concat('b', toString(u % 100), ':u', toString(u)) AS thread_id,
  ['whatsapp', 'messenger', 'instagram', 'sms', 'webchat'][1 + u % 5] AS channel,
  multiIf(type IN ('sponsored.served', 'sponsored.clicked'),
            concat('{"campaign_id":"c', toString(cityHash64(number, 'c') % 200), '","price_micros":', toString(1000 + cityHash64(number, 'p') % 5000), '}'),
          type IN ('order.placed', 'lead.submitted'), concat('{"value":', toString(cityHash64(number, 'v') % 200), '}'),
          '{}') AS props,
  now64(3) AS ingested_at
FROM (SELECT number, cityHash64(number, 'user') % ${USERS} AS u, cityHash64(number, 'type') % 100 AS r FROM numbers(${N}))`,
  clickhouse_settings: { max_insert_threads: '2' },
});
await store.client.command({ query: `OPTIMIZE TABLE ${db}.events FINAL` });
const genSeconds = (performance.now() - genStart) / 1000;

const steps = ['message.received', 'sponsored.served', 'sponsored.clicked', 'order.placed'];
const range = { from: new Date(T0).toISOString(), to: new Date(T0 + DAYS * 86_400_000).toISOString() };
const funnel = funnelRequestSchema.parse({
  steps: steps.map((type) => ({ type })),
  window_seconds: 7 * 86_400,
  ...range,
});
const funnelQ = buildFunnelQuery(db, funnel);
const baselineQ = {
  query: `SELECT level, count() AS users FROM (
  SELECT user_id, windowFunnel({window:UInt64}, 'strict_increase')(toUInt64(toUnixTimestamp64Milli(occurred_at)), ${steps.map((_, i) => `type = {s${i}:String}`).join(', ')}) AS level
  FROM ${db}.events FINAL
  WHERE occurred_at >= fromUnixTimestamp64Milli({from:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64}) AND type IN {types:Array(String)}
  GROUP BY user_id
) GROUP BY level ORDER BY level`,
  query_params: {
    window: 7 * 86_400_000,
    from: funnel.from,
    to: funnel.to,
    types: steps,
    ...Object.fromEntries(steps.map((s, i) => [`s${i}`, s])),
  },
};
const attributionQ = buildAttributionQuery(db, attributionRequestSchema.parse({ model: 'linear', ...range }));

async function timed<T>(q: { query: string; query_params: Record<string, unknown> }) {
  const times: number[] = [];
  let rows: T[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    rows = await (await store.client.query({ ...q, format: 'JSONEachRow' })).json<T>();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return { seconds: times[Math.floor(times.length / 2)], rows };
}

const mine = await timed<{ users: (number | string)[]; medians: number[] }>(funnelQ);
const base = await timed<{ level: number; users: number | string }>(baselineQ);
const attr = await timed<{ campaign_id: string; currency: string; conversions: number; value: number }>(
  attributionQ,
);

// The same users per step from both funnels, or the comparison means nothing.
const baseUsers = steps.map((_, k) =>
  base.rows.filter((r) => Number(r.level) > k).reduce((s, r) => s + Number(r.users), 0),
);
const mineUsers = mine.rows[0].users.map(Number);
const conversions = attr.rows.reduce((s, r) => s + Number(r.conversions), 0);

printTable(
  `Reports over ${N.toLocaleString('en')} events, ${USERS.toLocaleString('en')} users (median of ${RUNS} runs; generated in ${genSeconds.toFixed(1)} s)`,
  [
    ['query', 'seconds', 'vs windowFunnel', 'result'],
    [
      'funnel, 4 steps, ordered + medians (Parley)',
      mine.seconds.toFixed(3),
      `${(mine.seconds / base.seconds).toFixed(2)}x`,
      mineUsers.join(' > '),
    ],
    ['funnel, 4 steps, windowFunnel (baseline)', base.seconds.toFixed(3), '1.00x', baseUsers.join(' > ')],
    [
      'attribution, linear, default windows',
      attr.seconds.toFixed(3),
      '',
      `${Math.round(conversions).toLocaleString('en')} conversions, ${attr.rows.length} rows`,
    ],
  ],
);
console.log(
  `funnel users per step agree with windowFunnel: ${JSON.stringify(mineUsers) === JSON.stringify(baseUsers) ? 'yes' : 'NO'}`,
);
console.log(
  `median seconds from previous step: ${mine.rows[0].medians.map((m, i) => (i ? Number(m).toFixed(0) : '-')).join(', ')}`,
);

await store.close();
await rm(dataDir, { recursive: true, force: true });
