// Batch segment preview on the embedded defaults: a three-clause rule compiled by Parley against
// a hand-written ClickHouse query for the same rule, on the same rows in the same process (the
// baseline; the ratio is what to compare across runs, as absolute times drift on a shared machine).
//
//   node bench/run.js segments [--events 10000000] [--users 1000000] [--runs 3]
//
// The events are generated inside ClickHouse with numbers(), spread over 30 days and 100
// businesses; order values and channels vary so every clause filters.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../core/log.ts';
import { compileRule } from '../core/segments/rule.ts';
import { buildSegmentSizeQuery } from '../core/segments/sql.ts';
import { createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '10000000' },
    users: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
  },
});
const N = Number(values.events);
const USERS = Number(values.users);
const RUNS = Number(values.runs);
const DAYS = 30;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const AS_OF = T0 + DAYS * 86_400_000;
const WINDOW_S = 14 * 86_400;

const dataDir = await mkdtemp(join(tmpdir(), 'parley-bench-segments-'));
const store = await createStore({ dataDir, clickhouse: { database: 'parley' } });
await migrate(store, createLogger({ level: 'silent' }));
const db = store.database;

const genStart = performance.now();
await store.client.command({
  query: `INSERT INTO ${db}.events (event_id, type, occurred_at, business_id, user_id, thread_id, channel, props, ingested_at)
SELECT
  concat('e', toString(number)) AS event_id,
  multiIf(r < 55, 'message.received', r < 70, 'message.sent', r < 85, 'sponsored.served', r < 92, 'sponsored.clicked', 'order.placed') AS type,
  fromUnixTimestamp64Milli(toInt64(${T0} + cityHash64(number, 'time') % ${DAYS * 86_400_000})) AS occurred_at,
  concat('b', toString(u % 100)) AS business_id,
  concat('u', toString(u)) AS user_id,
  concat('b', toString(u % 100), ':u', toString(u)) AS thread_id,
  ['whatsapp', 'messenger', 'instagram', 'sms', 'webchat'][1 + cityHash64(number, 'ch') % 5] AS channel,
  multiIf(type = 'order.placed', concat('{"value":', toString(cityHash64(number, 'v') % 200), ',"currency":"EUR"}'),
          type = 'message.received', concat('{"text_length":', toString(cityHash64(number, 'l') % 300), '}'),
          '{}') AS props,
  now64(3) AS ingested_at
FROM (SELECT number, cityHash64(number, 'user') % ${USERS} AS u, cityHash64(number, 'type') % 100 AS r FROM numbers(${N}))`,
  clickhouse_settings: { max_insert_threads: '2' },
});
await store.client.command({ query: `OPTIMIZE TABLE ${db}.events FINAL` });
const genSeconds = (performance.now() - genStart) / 1000;

// Messaged 3+ times in the last 14 days, ordered for 50 or more, never clicked an ad on WhatsApp.
const rule = {
  all: [
    { performed: 'message.received', count: { gte: 3 }, within_seconds: WINDOW_S },
    { performed: 'order.placed', where: { 'props.value': { gte: 50 } } },
    { not: { performed: 'sponsored.clicked', where: { channel: 'whatsapp' } } },
  ],
};
const parleyQ = buildSegmentSizeQuery(db, compileRule(rule), { asOfMs: AS_OF });
const baselineQ = {
  query: `SELECT count() AS size FROM (
  SELECT user_id FROM ${db}.events FINAL
  WHERE occurred_at <= fromUnixTimestamp64Milli({as_of:Int64})
  GROUP BY user_id
  HAVING countIf(type = 'message.received' AND occurred_at > fromUnixTimestamp64Milli({from:Int64})) >= 3
     AND countIf(type = 'order.placed' AND JSONExtractFloat(props, 'value') >= 50) >= 1
     AND countIf(type = 'sponsored.clicked' AND channel = 'whatsapp') = 0
)`,
  query_params: { as_of: AS_OF, from: AS_OF - WINDOW_S * 1000 },
};

async function timed(q: { query: string; query_params: Record<string, unknown> }) {
  const times: number[] = [];
  let size = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const [row] = await (await store.client.query({ ...q, format: 'JSONEachRow' })).json<{
      size: number | string;
    }>();
    times.push((performance.now() - t) / 1000);
    size = Number(row.size);
  }
  times.sort((a, b) => a - b);
  return { seconds: times[Math.floor(times.length / 2)], size };
}

const base = await timed(baselineQ);
const mine = await timed(parleyQ);

printTable(
  `Segment preview over ${N.toLocaleString('en')} events, ${USERS.toLocaleString('en')} users (median of ${RUNS} runs; generated in ${genSeconds.toFixed(1)} s)`,
  [
    ['query', 'seconds', 'vs hand-written', 'members'],
    [
      '3-clause rule, POST /v1/segments/preview (Parley)',
      mine.seconds.toFixed(3),
      `${(mine.seconds / base.seconds).toFixed(2)}x`,
      mine.size.toLocaleString('en'),
    ],
    [
      'same rule, hand-written ClickHouse (baseline)',
      base.seconds.toFixed(3),
      '1.00x',
      base.size.toLocaleString('en'),
    ],
  ],
);
console.log(`sizes agree: ${mine.size === base.size ? 'yes' : 'NO'}`);

await store.close();
await rm(dataDir, { recursive: true, force: true });
