// What one batch's duplicate check costs, for the ways it can be asked (docs/ingest.md): every id
// of the batch looked up in the event_ids registry (sorted by event_id) or in the events table by
// its sort key's (business_id, user_id) prefix; only the ids an in-memory filter of registered ids
// lets through (duplicates and ~1% of the rest); the filter itself; and what registering a
// batch's ids costs next to inserting the batch's events.
//
//   node bench/run.js dedup [--rows 1000000] [--batch 5000] [--rounds 10]

import { parseArgs } from 'node:util';
import { rm } from 'node:fs/promises';
import { EventMessage } from '../core/events/message.ts';
import { createDedupIndex, IdFilter, isFirstSeen, RecentIds } from '../core/events/dedup.ts';
import { createLogger } from '../core/log.ts';
import { cpuSeconds } from './cpu.ts';
import { benchStore, createFanOut } from './store.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '10' },
  },
});
const ROWS = Number(values.rows);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);
const USERS = Math.ceil(ROWS / 20);
const { store, dataDir } = await benchStore('dedup');
const db = store.database;
const t0 = Date.parse('2026-11-01T00:00:00Z');

const id = (i: number) => `e${(i * 2654435761) % 4294967296}-${i}`;
const ev = (i: number) => ({
  event_id: id(i),
  type: 'message.received',
  occurred_at: new Date(t0 + i * 1000).toISOString(),
  business_id: `b${i % 50}`,
  user_id: `u${i % USERS}`,
  thread_id: `t${i % USERS}`,
  channel: 'whatsapp',
  props: '{"text_length":12}',
});
const lines = (rows: object[]) => Buffer.from(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
const settings = { date_time_input_format: 'best_effort' };

for (let from = 0; from < ROWS; from += 100_000) {
  const evs = Array.from({ length: Math.min(100_000, ROWS - from) }, (_, k) => ev(from + k));
  await store.insertJsonLines(`${db}.events`, lines(evs), settings);
  await store.insertJsonLines(
    `${db}.event_ids`,
    lines(
      evs.map((e, k) => ({
        event_id: e.event_id,
        bus_partition: k % 4,
        bus_offset: from + k,
        accepted_at: e.occurred_at,
      })),
    ),
    settings,
  );
}
await store.client.command({ query: `OPTIMIZE TABLE ${db}.events FINAL` });
await store.client.command({ query: `OPTIMIZE TABLE ${db}.event_ids FINAL` });

/** Median ms per batch, and CPU µs per row of the batch (every thread of the process, all rounds). */
async function timed(fn: () => Promise<unknown>): Promise<[string, string]> {
  const ms: number[] = [];
  const cpu0 = cpuSeconds(process.pid);
  for (let r = 0; r < ROUNDS; r++) {
    const s = performance.now();
    await fn();
    ms.push(performance.now() - s);
  }
  const cpu = ((cpuSeconds(process.pid) - cpu0) * 1e6) / (ROUNDS * BATCH);
  ms.sort((a, b) => a - b);
  return [ms[ms.length >> 1].toFixed(1), cpu.toFixed(1)];
}

let round = 0;
// Half stored ids spread over the table, half new ones.
const batchIds = () => {
  round++;
  const out: number[] = [];
  for (let k = 0; k < BATCH; k++)
    out.push(k % 2 ? (k * 7919 + round * 104729) % ROWS : ROWS + round * BATCH + k);
  return out;
};
const registry = await timed(async () => {
  const ids = batchIds().map(id);
  const rs = await store.client.query({
    query: `SELECT event_id, min((accepted_at, bus_partition, bus_offset)) FROM ${db}.event_ids WHERE event_id IN {ids:Array(String)} GROUP BY event_id`,
    query_params: { ids },
    format: 'JSONCompactEachRow',
  });
  await rs.json();
});
const byUser = await timed(async () => {
  const evs = batchIds().map(ev);
  const rs = await store.client.query({
    query: `SELECT DISTINCT event_id FROM ${db}.events WHERE business_id IN {bs:Array(String)} AND user_id IN {us:Array(String)} AND event_id IN {ids:Array(String)}`,
    query_params: {
      bs: [...new Set(evs.map((e) => e.business_id))],
      us: [...new Set(evs.map((e) => e.user_id))],
      ids: evs.map((e) => e.event_id),
    },
    format: 'JSONCompactEachRow',
  });
  await rs.json();
});
const FEW = Math.max(1, Math.round(BATCH / 100));
const filtered = await timed(async () => {
  const ids = batchIds().slice(0, FEW).map(id);
  const rs = await store.client.query({
    query: `SELECT event_id, min((accepted_at, bus_partition, bus_offset)) FROM ${db}.event_ids WHERE event_id IN {ids:Array(String)} GROUP BY event_id`,
    query_params: { ids },
    format: 'JSONCompactEachRow',
  });
  await rs.json();
});
const filter = new IdFilter(8_000_000);
for (let i = 0; i < ROWS; i++) filter.add(id(i));
const inMemory = await timed(async () => {
  let hits = 0;
  for (const i of batchIds()) {
    const k = id(i);
    if (filter.has(k)) hits++;
    else filter.add(k);
  }
  return hits;
});
let next = ROWS * 10;
const insertEvents = await timed(async () => {
  const evs = Array.from({ length: BATCH }, () => ev(next++));
  await store.insertJsonLines(`${db}.events`, lines(evs), settings);
});
const insertIds = await timed(async () => {
  const rows = Array.from({ length: BATCH }, (_, k) => ({
    event_id: id(next++),
    bus_partition: 0,
    bus_offset: next + k,
    accepted_at: new Date().toISOString(),
  }));
  await store.insertJsonLines(`${db}.event_ids`, lines(rows), settings);
});

// The sink's insert and its registration, one after the other and at once.
const pair = () => {
  const evs = Array.from({ length: BATCH }, () => ev(next++));
  const ids = evs.map((e, k) => ({
    event_id: e.event_id,
    bus_partition: 0,
    bus_offset: next + k,
    accepted_at: new Date().toISOString(),
  }));
  return [
    () => store.insertJsonLines(`${db}.events`, lines(evs), settings),
    () => store.insertJsonLines(`${db}.event_ids`, lines(ids), settings),
  ];
};
const sequential = await timed(async () => {
  const [a, b] = pair();
  await a();
  await b();
});
const together = await timed(async () => {
  const [a, b] = pair();
  await Promise.all([a(), b()]);
});

// The registry filled from the events insert: one insert into a Null table whose materialized
// views write both tables (the client sends each row once, with its position).
const fanOut = await createFanOut(store);
const fannedOut = await timed(async () => {
  const evs = Array.from({ length: BATCH }, (_, k) => ({
    ...ev(next++),
    bus_partition: 0,
    bus_offset: next + k,
    accepted_at: new Date().toISOString(),
  }));
  await store.insertJsonLines(fanOut, lines(evs), settings);
});

// The alternative to a registry: the position of each copy in the events rows themselves, found
// again through a skip index on event_id.
await store.client.command({
  query: `CREATE TABLE ${db}.events_pos AS ${db}.events ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(occurred_at) ORDER BY (business_id, user_id, occurred_at, event_id)`,
});
await store.client.command({
  query: `ALTER TABLE ${db}.events_pos ADD COLUMN bus_partition UInt32, ADD COLUMN bus_offset UInt64, ADD COLUMN accepted_at DateTime64(3, 'UTC'), ADD INDEX event_id_bf event_id TYPE bloom_filter(0.01) GRANULARITY 1`,
});
const insertWithPositions = await timed(async () => {
  const evs = Array.from({ length: BATCH }, (_, k) => ({
    ...ev(next++),
    bus_partition: 0,
    bus_offset: next + k,
    accepted_at: new Date().toISOString(),
  }));
  await store.insertJsonLines(`${db}.events_pos`, lines(evs), settings);
});

// The in-memory part per event, as one process runs it: the sink, segments and attribution share
// one index; the decision engine keeps its own memory. New ids only (no store lookup).
const perEvent = await (async () => {
  const index = createDedupIndex({ store, logger: createLogger({ level: 'silent' }) });
  const stages = [index.forStage(() => {}), index.forStage(() => {}), index.forStage(() => {})];
  const feed = new RecentIds(1_000_000);
  const n = BATCH * ROUNDS * 4;
  const messages = Array.from(
    { length: n },
    (_, i) =>
      new EventMessage({
        topic: 'parley.events',
        partition: i % 4,
        offset: BigInt(i),
        key: 'u',
        value: Buffer.from(JSON.stringify({ ...ev(i), event_id: `fresh-${i}-${id(i)}` })),
        timestamp: 0,
        headers: {},
      }),
  );
  // CPU time, not wall time: the machine may be busy with other work.
  const started = process.cpuUsage();
  for (let i = 0; i < n; i += BATCH) {
    const batch = messages.slice(i, i + BATCH);
    for (const stage of stages) await stage.firstCopies(batch);
    for (const m of batch) isFirstSeen(feed, m);
  }
  index.close();
  const used = process.cpuUsage(started);
  return ((used.user + used.system) / n).toFixed(2);
})();

printTable(
  `Duplicate check per batch of ${BATCH} ids over ${ROWS} stored events (median ms of ${ROUNDS}; CPU of every thread per row)`,
  [
    ['step', 'ms', 'CPU µs per row'],
    ...(
      [
        ['look up every id in event_ids (ORDER BY event_id)', registry],
        ['look up every id in events by (business_id, user_id)', byUser],
        [`look up only the ${FEW} ids the filter lets through`, filtered],
        ['the in-memory filter over the batch', inMemory],
        ['insert the batch into events', insertEvents],
        ['register the batch in event_ids', insertIds],
        ['insert into events, then register', sequential],
        ['insert into events and register at once', together],
        ['one insert into a Null table that materialized views fan out to both', fannedOut],
        ['insert the batch into events with positions and a skip index', insertWithPositions],
      ] as [string, [string, string]][]
    ).map(([step, [ms, cpu]]) => [step, ms, cpu]),
  ],
);
printTable('In-memory checks of new events: 3 processors and the decision engine', [
  ['CPU µs per event', perEvent],
]);
await store.close();
await rm(dataDir, { recursive: true, force: true });
