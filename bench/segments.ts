// Segments on the embedded defaults, two measurements:
//
// preview: a three-clause rule compiled by Parley against a hand-written ClickHouse query for the
// same rule, on the same rows in the same process (the baseline; the ratio is what to compare
// across runs, as absolute times drift on a shared machine). The events are generated inside
// ClickHouse with numbers(), spread over 30 days and 100 businesses; order values and channels
// vary so every clause filters.
//
// freshness: Parley running in this process; events POSTed over HTTP at a steady rate, each from a
// new user who thereby enters a segment; the time from the ingest acknowledgement to the
// segment.entered message arriving on the membership topic, p50/p95/max.
//
//   node bench/run.js segments [--mode all|preview|freshness] [--events 10000000] [--users 1000000]
//                              [--runs 3] [--rate 10000] [--seconds 10] [--brokers host:port]
//
// With --brokers, freshness is measured with the bus on that Kafka cluster (unique topic names).

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startParley } from '../bin/server.ts';
import { parseConfig, topicNames } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { compileRule } from '../core/segments/rule.ts';
import { buildSegmentSizeQuery } from '../core/segments/sql.ts';
import { benchStore } from './store.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'all' },
    events: { type: 'string', default: '10000000' },
    users: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '10' },
    brokers: { type: 'string' },
  },
});
const N = Number(values.events);
const USERS = Number(values.users);
const RUNS = Number(values.runs);
const DAYS = 30;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const AS_OF = T0 + DAYS * 86_400_000;
const WINDOW_S = 14 * 86_400;

async function preview() {
  const { store, dataDir } = await benchStore('segments');
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
}

async function freshness() {
  const RATE = Number(values.rate);
  const SECONDS = Number(values.seconds);
  const TICK_MS = 50;
  const perTick = Math.max(1, Math.round((RATE * TICK_MS) / 1000));
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-freshness-'));
  const key = `pk_bench_${randomBytes(12).toString('hex')}`;
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_LOG_LEVEL: 'warn',
    ...(values.brokers
      ? {
          PARLEY_KAFKA_BROKERS: values.brokers,
          PARLEY_TOPIC_PREFIX: `bench-${randomBytes(4).toString('hex')}.`,
        }
      : {}),
  });
  const parley = await startParley(config, { logger: createLogger({ level: 'warn' }), out: () => {} });
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const created = await fetch(`${parley.url}/v1/segments`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      name: 'wrote to us',
      business_id: 'bench',
      rule: { performed: 'message.received', where: { channel: 'whatsapp' } },
    }),
  });
  const segmentId = ((await created.json()) as { id: string }).id;
  await new Promise((r) => setTimeout(r, 3000)); // the processor picks the segment up within its poll

  const acked = new Map<string, number>();
  const seenAt = new Map<string, number>();
  const sub = await parley.bus.read({
    topic: topicNames(config).membership,
    from: 'latest',
    maxWaitMs: 1,
    handler: async (b) => {
      const t = performance.now();
      for (const m of b.messages) {
        const msg = JSON.parse(m.value.toString()) as { segment_id: string; user_id: string; type: string };
        if (msg.segment_id === segmentId && msg.type === 'segment.entered') seenAt.set(msg.user_id, t);
      }
    },
  });
  await sub.ready;

  const total = RATE * SECONDS;
  let sent = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  for (let tick = 0; sent < total; tick++) {
    const wait = start + tick * TICK_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const users = Array.from({ length: Math.min(perTick, total - sent) }, (_, i) => `fresh_${sent + i}`);
    sent += users.length;
    const body = JSON.stringify(
      users.map((u) => ({
        event_id: `${u}-1`,
        type: 'message.received',
        occurred_at: new Date().toISOString(),
        business_id: 'bench',
        user_id: u,
        channel: 'whatsapp',
        props: { text_length: 5 },
      })),
    );
    inflight.push(
      fetch(`${parley.url}/v1/events`, { method: 'POST', headers, body }).then(async (res) => {
        const t = performance.now();
        if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
        for (const u of users) acked.set(u, t);
      }),
    );
  }
  await Promise.all(inflight);
  const sendSeconds = (performance.now() - start) / 1000;
  const backlog: Record<string, number> = {};
  for (const g of ['sink', 'segments', 'attribution']) {
    const lag = await parley.bus.lag(`${config.topics.prefix}parley-${g}`, topicNames(config).events);
    backlog[g] = lag.reduce((n, p) => n + Number(p.end - p.committed), 0);
  }
  const deadline = Date.now() + 60_000;
  while (seenAt.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

  // A change can be on the topic before the HTTP answer reaches the client: that counts as 0 ms.
  const lat = [...acked]
    .filter(([u]) => seenAt.has(u))
    .map(([u, t]) => Math.max(0, (seenAt.get(u) as number) - t))
    .sort((a, b) => a - b);
  const q = (p: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(0) : '-';
  printTable(
    `Membership freshness, ${values.brokers ? 'Kafka bus' : 'embedded'}: ${total.toLocaleString('en')} events offered at ${RATE.toLocaleString('en')}/s (sent in ${sendSeconds.toFixed(1)} s, ${Math.round(total / sendSeconds).toLocaleString('en')}/s achieved)`,
    [
      ['from ingest ack to segment.entered on the topic', 'p50 ms', 'p95 ms', 'max ms', 'changes seen'],
      [
        'one new user per event',
        q(0.5),
        q(0.95),
        q(1 - 1e-9),
        `${seenAt.size.toLocaleString('en')} / ${total.toLocaleString('en')}`,
      ],
    ],
  );
  console.log(
    `uncommitted events per consumer group when the last event was acknowledged: ${JSON.stringify(backlog)}`,
  );
  await sub.stop();
  await parley.stop();
  await rm(dir, { recursive: true, force: true });
}

if (values.mode === 'all' || values.mode === 'preview') await preview();
if (values.mode === 'all' || values.mode === 'freshness') await freshness();
