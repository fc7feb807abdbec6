// Kafka mode, Parley's roles as separate processes on a real broker, in two parts:
//
// (a) Producer throughput: the same events (realistic, from the simulator) produced to the same
//     broker by Parley's ingest process (HTTP batches of 1,000, acknowledged with 202 once Kafka
//     has them with acks=all through an idempotent producer) and by `kcat` (librdkafka, the same
//     canonical event JSON keyed by user_id, acks=all, idempotent) into a fresh topic with the
//     same partitions. Target: Parley ≥ 50% of kcat.
// (b) End to end: a steady offered load (paced batches of 1,000, 20,000 events/s for 20 s by
//     default) into the ingest process, two processor processes in one consumer group, all on
//     ClickHouse over HTTP (`parley dev-clickhouse`). Per batch, the lag from its 202 until all
//     of its events are queryable. Target: p95 < 2 s.
//
//   node bench/run.js kafka [--events 200000] [--concurrency 4] [--rate 20000] [--seconds 20]
//                           [--partitions 4] [--poll-ms 50] [--only producer|e2e]
//
// The broker is PARLEY_KAFKA_BROKERS, or the local one from scripts/kafka.sh (started if needed,
// and left running: it is shared, like `npm run kafka:up`; `npm run kafka:down` stops it). Every
// process, topic and consumer group the bench makes is removed at the end; every wait is bounded.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { generateTraffic } from '../bin/sim/traffic.ts';
import { parseConfig } from '../core/config.ts';
import { normalizeEvent } from '../core/events/normalize.ts';
import { type ParleyProcess, spawnParley, waitFor } from '../test/helpers/parley-process.ts';
import { ROOT } from '../test/helpers/process.ts';
import { cpuSeconds } from './cpu.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    concurrency: { type: 'string', default: '4' },
    batch: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '20' },
    partitions: { type: 'string', default: '4' },
    'poll-ms': { type: 'string', default: '50' },
    only: { type: 'string' },
  },
});
const N = Number(values.events);
const CONCURRENCY = Number(values.concurrency);
const BATCH = Number(values.batch);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const PARTITIONS = Number(values.partitions);
const POLL_MS = Number(values['poll-ms']);
const ONLY = values.only;
for (const [k, v] of Object.entries({ N, CONCURRENCY, BATCH, RATE, SECONDS, PARTITIONS, POLL_MS }))
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number`);
if (ONLY && ONLY !== 'producer' && ONLY !== 'e2e') throw new Error('--only is producer or e2e');

// ---------------------------------------------------------------------------------------------
// Prerequisites: kcat and a broker.

const KCAT_INSTALL = 'apt-get update && apt-get install -y kcat';
if (ONLY !== 'e2e') {
  const probe = spawnSync('kcat', ['-V'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    console.error(
      `bench/kafka compares Parley with kcat, which is not installed. Install it with:\n\n  ${KCAT_INSTALL}\n`,
    );
    process.exit(1);
  }
  console.log(
    probe.stdout
      .split('\n')
      .find((l) => l.startsWith('Version'))
      ?.trim(),
  );
}

function kafkaScript(cmd: 'up' | 'status') {
  return spawnSync('bash', ['scripts/kafka.sh', cmd], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
}

let brokers = parseConfig().kafka?.brokers;
if (!brokers?.length) {
  let status = kafkaScript('status');
  if (status.status !== 0) {
    console.log('PARLEY_KAFKA_BROKERS is not set: starting the local broker (scripts/kafka.sh up)');
    status = kafkaScript('up');
    if (status.status !== 0) {
      console.error(`could not start the local broker:\n${status.stdout}${status.stderr}`);
      process.exit(1);
    }
  }
  // "kafka running (pid …) at 127.0.0.1:19092" / "kafka up at 127.0.0.1:19092"
  brokers = [/ at (\S+:\d+)/.exec(status.stdout)?.[1] ?? '127.0.0.1:19092'];
}
const BROKERS = brokers;
console.log(`broker: ${BROKERS.join(',')}`);

// ---------------------------------------------------------------------------------------------
// Events: realistic traffic, made unique per run (event ids carry the run and the batch, so the
// end-to-end poller can count each batch in the store).

type SimEvent = ReturnType<typeof generateTraffic> extends Iterable<infer T> ? T : never;
const E2E_EVENTS = ONLY === 'producer' ? 0 : Math.round(RATE * SECONDS);
const need = Math.max(ONLY === 'e2e' ? 0 : N, E2E_EVENTS);
const pool: SimEvent[] = [];
for (const e of generateTraffic({
  seed: 'bench-kafka',
  businesses: 50,
  users: Math.ceil(need / 4),
  days: 7,
  now: Date.now(),
})) {
  pool.push(e);
  if (pool.length === need) break;
}
if (pool.length < need) throw new Error(`the simulator made ${pool.length} events, not ${need}`);

const run = `k${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const key = `bench-admin-${randomBytes(12).toString('hex')}`;

/** Batches of events whose ids are `${tag}-${batch}-${i}`. */
function batches(tag: string, count: number): SimEvent[][] {
  const out: SimEvent[][] = [];
  for (let from = 0; from < count; from += BATCH) {
    const b = out.length;
    out.push(
      pool.slice(from, Math.min(count, from + BATCH)).map((e, i) => ({ ...e, event_id: `${tag}-${b}-${i}` })),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Processes, topics and groups, all cleaned up at the end.

let dir = '';
const procs: ParleyProcess[] = [];
const prefixes: string[] = [];
let admin: Admin | undefined;
let ch: ClickHouseClient | undefined;
let chUrl = '';

async function stopAll() {
  await Promise.all(
    procs.splice(0).map(async (p) => {
      p.child.kill('SIGTERM');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
      await p.exited;
      clearTimeout(t);
    }),
  );
}

async function cleanup() {
  await ch?.close().catch(() => {});
  await stopAll();
  if (admin) {
    try {
      const mine = (s: string) => prefixes.some((p) => s.startsWith(p));
      const topics = (await admin.listTopics()).filter(mine);
      if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 });
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter(mine);
      if (groups.length) await admin.deleteGroups(groups);
      console.log(`removed ${topics.length} topics and ${groups.length} consumer groups`);
    } catch (err) {
      console.error(`could not remove every topic and group: ${(err as Error).message}`);
    }
    await admin.disconnect().catch(() => {});
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });

async function startStore() {
  const p = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', '0'], {
    PARLEY_DATA_DIR: join(dir, 'store'),
  });
  procs.push(p);
  return p.waitForOutput(/dev-clickhouse is listening on (http:\S+)/);
}

async function startRole(
  role: 'ingest' | 'processors',
  name: string,
  prefix: string,
  extra: Record<string, string> = {},
) {
  const p = spawnParley(name, ['start', '--role', role], {
    PARLEY_PORT: '0',
    PARLEY_DATA_DIR: join(dir, name),
    PARLEY_KAFKA_BROKERS: BROKERS.join(','),
    PARLEY_CLICKHOUSE_URL: `${chUrl}/parley`,
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_TOPIC_PREFIX: prefix,
    PARLEY_TOPIC_PARTITIONS: String(PARTITIONS),
    ...extra,
  });
  procs.push(p);
  return { p, url: await p.waitForOutput(/Parley is listening on (http:\S+)/) };
}

/** 503s answered (and retried) per part: ingest's answer while the bus cannot take events. */
const retried = { producer: 0, e2e: 0 };

/**
 * Posts one batch; resolves when ingest has answered 202 for all of it. A 503 (nothing was
 * acknowledged, retry) is retried with backoff, as a client does, for up to 60 s.
 */
async function post(url: string, body: string, size: number, part: keyof typeof retried) {
  const giveUp = Date.now() + 60_000;
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
    });
    const out = (await res.json()) as { accepted?: number };
    if (res.status === 202 && out.accepted === size) return;
    if (res.status !== 503 || Date.now() > giveUp)
      throw new Error(`ingest answered ${res.status}: ${JSON.stringify(out).slice(0, 500)}`);
    retried[part]++;
    await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
  }
}

async function topicMessages(topic: string) {
  return (await (admin as Admin).fetchTopicOffsets(topic)).reduce(
    (n, p) => n + Number(p.high) - Number(p.low),
    0,
  );
}

const pct = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * q) - 1))];

// ---------------------------------------------------------------------------------------------
// (a) Producer throughput.

async function producer() {
  const prefix = `${run}-a.`;
  prefixes.push(prefix);
  const ingest = await startRole('ingest', 'ingest-a', prefix);
  const topic = `${prefix}parley.events`;

  // Warm-up (not timed, its own ids): connections, JIT, the producer's id.
  for (const b of batches(`${run}w`, Math.min(N, 10 * BATCH)))
    await post(ingest.url, JSON.stringify(b), b.length, 'producer');
  const warm = await topicMessages(topic);

  const list = batches(`${run}a`, N);
  const bodies = list.map((b) => ({ body: JSON.stringify(b), size: b.length }));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < bodies.length) {
        const { body, size } = bodies[next++];
        await post(ingest.url, body, size, 'producer');
      }
    }),
  );
  const parleySecs = (performance.now() - t0) / 1000;
  const parleyStored = (await topicMessages(topic)) - warm;
  if (parleyStored !== N) throw new Error(`the ingest topic holds ${parleyStored} new messages, not ${N}`);
  await stopAll(); // ingest and dev-clickhouse leave the CPU to kcat
  // (dev-clickhouse is restarted by the end-to-end part on a fresh data directory)

  // kcat: the canonical events ingest publishes (normalised here, before the clock starts),
  // keyed by user_id, one per line, into a fresh topic with the same partitions and settings.
  const kcatTopic = `${prefix}kcat.events`;
  await (admin as Admin).createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic: kcatTopic,
        numPartitions: PARTITIONS,
        replicationFactor: 1,
        configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
      },
    ],
  });
  const lines: string[] = [];
  for (const b of list)
    for (const e of b) {
      const r = normalizeEvent(e, { now: Date.now(), maxFutureMs: 300_000, keywords: [] });
      if (!r.ok) throw new Error(r.error);
      lines.push(`${r.value.user_id}\t${JSON.stringify(r.value)}`);
    }
  const file = join(dir, 'kcat-input.txt');
  await writeFile(file, `${lines.join('\n')}\n`);
  const bytes = lines.reduce((n, l) => n + l.length + 1, 0);
  const args = [
    '-P',
    '-b',
    BROKERS.join(','),
    '-t',
    kcatTopic,
    '-K',
    '\t',
    '-X',
    'acks=all',
    '-X',
    'enable.idempotence=true',
    // Java's (and kafkajs's) partitioner, so keys land on the same partitions as Parley's.
    '-X',
    'partitioner=murmur2_random',
    '-l',
    file,
  ];
  const k0 = performance.now();
  const kcat = spawn('kcat', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let kcatErr = '';
  kcat.stderr.on('data', (d) => (kcatErr += d));
  const code = await new Promise<number | null>((ok, fail) => {
    const t = setTimeout(() => {
      kcat.kill('SIGKILL');
      fail(new Error('kcat did not finish within 300 s'));
    }, 300_000);
    kcat.once('exit', (c) => {
      clearTimeout(t);
      ok(c);
    });
  });
  const kcatSecs = (performance.now() - k0) / 1000;
  if (code !== 0) throw new Error(`kcat exited with ${code}: ${kcatErr.slice(-2000)}`);
  const kcatStored = await topicMessages(kcatTopic);
  if (kcatStored !== N) throw new Error(`kcat's topic holds ${kcatStored} messages, not ${N}`);

  const rate = (s: number) => Math.round(N / s);
  const ratio = kcatSecs / parleySecs;
  printTable(
    `(a) producer throughput: ${N} events (${(bytes / 1e6).toFixed(1)} MB of canonical JSON), ${PARTITIONS} partitions, acks=all, idempotent`,
    [
      ['producer', 'seconds', 'events/s', 'MB/s', 'vs kcat'],
      [
        'kcat (librdkafka), from a file',
        kcatSecs.toFixed(2),
        rate(kcatSecs),
        (bytes / 1e6 / kcatSecs).toFixed(1),
        '1.00',
      ],
      [
        `parley ingest process: HTTP batches of ${BATCH}, ${CONCURRENCY} clients, until 202`,
        parleySecs.toFixed(2),
        rate(parleySecs),
        (bytes / 1e6 / parleySecs).toFixed(1),
        ratio.toFixed(2),
      ],
    ],
  );
  if (retried.producer) console.log(`parley: ${retried.producer} batches answered 503 and were retried`);
  console.log(`target: parley ≥ 0.50 of kcat (${ratio >= 0.5 ? 'met' : 'NOT met'})`);
}

// ---------------------------------------------------------------------------------------------
// (b) End to end: steady offered load, two processors, lag from 202 to queryable.

async function endToEnd() {
  const prefix = `${run}-b.`;
  prefixes.push(prefix);
  chUrl = await startStore();
  ch = createClient({ url: chUrl, request_timeout: 10_000 });
  // Ingest first: it migrates and creates the topics; the processors find them in place.
  const ingest = await startRole('ingest', 'ingest-b', prefix);
  await Promise.all([
    startRole('processors', 'processors-1', prefix),
    startRole('processors', 'processors-2', prefix),
  ]);
  // Load starts once every consumer group (sink, attribution, segments) has settled with both
  // processes in it.
  const groups = { 'parley-sink': 2, 'parley-attribution': 2, 'parley-segments': 2 };
  await waitFor(
    'the processors in their consumer groups',
    async () => {
      const { groups: found } = await (admin as Admin).describeGroups(
        Object.keys(groups).map((g) => `${prefix}${g}`),
      );
      return Object.entries(groups).every(([g, n]) => {
        const d = found.find((f) => f.groupId === `${prefix}${g}`);
        return d?.state === 'Stable' && d.members.length === n;
      });
    },
    60_000,
  );

  const tag = `${run}b`;
  const list = batches(tag, E2E_EVENTS);
  const bodies = list.map((b) => JSON.stringify(b));
  type B = { size: number; sentAt: number; ackAt?: number; doneAt?: number };
  const state: B[] = list.map((b) => ({ size: b.length, sentAt: 0 }));
  const pending = new Set<number>();
  let failure: Error | undefined;

  // The poller: counts, per batch, the distinct events of this run stored since the oldest
  // unfinished batch was sent (ingested_at is set by the store at insert time, so a batch's
  // rows are never older than its send time), every POLL_MS.
  let polls = 0;
  let pollMs = 0;
  let polling = true;
  let tEnd = Number.POSITIVE_INFINITY;
  const poller = (async () => {
    while ((polling || pending.size > 0) && !failure) {
      const p0 = performance.now();
      if (pending.size > 0) {
        const oldest = Math.min(...[...pending].map((i) => state[i].sentAt));
        const since = Math.floor(performance.timeOrigin + oldest) - 1000;
        const rs = await (ch as ClickHouseClient).query({
          query: `SELECT toUInt32(splitByChar('-', event_id)[2]) AS b, uniqExact(event_id) AS n
            FROM parley.events
            PREWHERE ingested_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
            WHERE startsWith(event_id, {tag:String})
            GROUP BY b`,
          query_params: { since, tag: `${tag}-` },
          format: 'JSONEachRow',
        });
        const rows = await rs.json<{ b: number; n: string | number }>();
        const now = performance.now();
        for (const r of rows) {
          const s = state[r.b];
          if (s && s.doneAt === undefined && Number(r.n) >= s.size) {
            s.doneAt = now;
            pending.delete(r.b);
          }
        }
        polls++;
        pollMs += now - p0;
      }
      const wait = POLL_MS - (performance.now() - p0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!polling && performance.now() - tEnd > 120_000) break;
    }
  })();
  poller.catch(() => {}); // awaited (and so reported) below, after the load

  // The load: batch k is due at t0 + k·BATCH/RATE; it is sent then whatever is in flight
  // (open loop), with at most 64 requests in flight as a safety bound.
  const interval = (1000 * BATCH) / RATE;
  // CPU each process uses during the load: with every role on one machine, where the cores go.
  const cpuAt = () =>
    new Map([
      ...procs.map((p) => [p.name, cpuSeconds(p.child.pid)] as const),
      [
        'load generator and poller (this process)',
        process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
      ],
    ]);
  const cpu0 = cpuAt();
  let inFlight = 0;
  let maxInFlight = 0;
  let lateMs = 0;
  const sends: Promise<void>[] = [];
  const t0 = performance.now();
  for (let k = 0; k < list.length && !failure; k++) {
    const due = t0 + k * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (inFlight >= 64 && !failure) await new Promise((r) => setTimeout(r, 1));
    lateMs = Math.max(lateMs, performance.now() - due);
    const s = state[k];
    s.sentAt = performance.now();
    pending.add(k);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    sends.push(
      post(ingest.url, bodies[k], s.size, 'e2e')
        .then(() => {
          s.ackAt = performance.now();
        })
        .catch((err) => {
          failure ??= err as Error;
        })
        .finally(() => {
          inFlight--;
        }),
    );
  }
  await Promise.all(sends);
  const tAcked = performance.now();
  polling = false;
  tEnd = performance.now();
  await poller;
  if (failure) throw failure;
  if (pending.size > 0) throw new Error(`${pending.size} batches were not queryable within 120 s`);
  const tDone = Math.max(...state.map((s) => s.doneAt as number));
  const cpu1 = cpuAt();

  // Everything acknowledged is stored exactly once.
  const rs = await (ch as ClickHouseClient).query({
    query:
      'SELECT count() AS n, uniqExact(event_id) AS u FROM parley.events FINAL WHERE startsWith(event_id, {tag:String})',
    query_params: { tag: `${tag}-` },
    format: 'JSONEachRow',
  });
  const [{ n, u }] = await rs.json<{ n: string; u: string }>();
  if (Number(n) !== E2E_EVENTS || Number(u) !== E2E_EVENTS)
    throw new Error(`stored ${n} rows (${u} distinct) of ${E2E_EVENTS}`);

  const lags = state
    .map((s) => Math.max(0, (s.doneAt as number) - (s.ackAt as number)))
    .sort((a, b) => a - b);
  const acks = state.map((s) => (s.ackAt as number) - s.sentAt).sort((a, b) => a - b);
  const secs = (t: number) => (t - t0) / 1000;
  // Over at least the schedule's span (list.length intervals), so a short run does not flatter.
  const ackRate = E2E_EVENTS / Math.max(secs(tAcked), (list.length * interval) / 1000);
  const ms = (v: number) => (v / 1000).toFixed(3);
  printTable(
    `(b) end to end: ${E2E_EVENTS} events offered at ${RATE} events/s in batches of ${BATCH}; ingest, 2 processors, dev-clickhouse; ${PARTITIONS} partitions`,
    [
      ['measure', 'value'],
      ['offered load (events/s)', RATE],
      ['acknowledged (events/s, first send → last 202)', Math.round(ackRate)],
      ['end to end (events/s, first send → last queryable)', Math.round(E2E_EVENTS / secs(tDone))],
      ['lag 202 → queryable, p50 (s)', ms(pct(lags, 0.5))],
      ['lag 202 → queryable, p95 (s)', ms(pct(lags, 0.95))],
      ['lag 202 → queryable, max (s)', ms(lags[lags.length - 1])],
      ['request → 202, p50 / p95 (s)', `${ms(pct(acks, 0.5))} / ${ms(pct(acks, 0.95))}`],
      ['requests in flight, max', maxInFlight],
      ['503s answered (retried after backoff)', retried.e2e],
      ['sends behind schedule, max (s)', ms(lateMs)],
      ['poller: polls, mean query (ms)', `${polls}, ${(pollMs / Math.max(1, polls)).toFixed(1)}`],
      ...[...cpu1]
        .filter(([, c]) => Number.isFinite(c))
        .map(([name, c]) => [
          `CPU during the load, ${name} (cores)`,
          ((c - (cpu0.get(name) ?? Number.NaN)) / secs(tDone)).toFixed(2),
        ]),
    ],
  );
  console.log(
    `lag is measured per batch of ${BATCH} from its 202 to the first poll (every ${POLL_MS} ms) that finds all of its events in the store`,
  );
  console.log(
    `target: p95 < 2 s at ${RATE} events/s (${pct(lags, 0.95) < 2000 && ackRate >= RATE * 0.95 ? 'met' : 'NOT met'})`,
  );
}

// ---------------------------------------------------------------------------------------------

let exitCode = 0;
try {
  dir = await mkdtemp(join(tmpdir(), 'parley-bench-kafka-'));
  admin = new Kafka({ clientId: 'parley-bench', brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  if (ONLY !== 'e2e') {
    chUrl = await startStore(); // ingest migrates and reads API keys through it
    await producer();
  }
  if (ONLY !== 'producer') {
    await rm(join(dir, 'store'), { recursive: true, force: true });
    await endToEnd();
  }
} catch (err) {
  console.error(`bench/kafka failed: ${(err as Error).stack ?? err}`);
  for (const p of procs) console.error(`--- ${p.name} output (tail) ---\n${p.output().slice(-2000)}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
