// Soak: simulator traffic at half the measured capacity for a long run, with a process killed
// every few minutes, to show Parley stays up: no acknowledged event lost or stored twice, and no
// memory growth once warm.
//
//   node bench/run.js soak [--minutes 30] [--rate N] [--kill-every 5] [--kafka]
//
// Embedded (default): one Parley process (every role, the embedded log), restarted (SIGTERM) every
// --kill-every minutes. --kafka (PARLEY_KAFKA_BROKERS, default 127.0.0.1:19092): an ingest process
// and two processor processes; one processor is killed (SIGKILL) and started again each time.
// In both, the store is a `parley dev-clickhouse` server, so the soak can count what is stored
// while Parley runs. Every minute it prints each process's resident memory, the processors' lag
// and events acknowledged vs stored. It ends with acknowledged = stored (each event_id once) and
// memory growth after warm-up under 10% for every Parley process, or exits 1.
//
// Default rates are half of README's measured capacity: 36,000 events/s embedded, 8,000 on Kafka
// (the end-to-end run carried 15,575–18,599). On a busy or smaller machine pass a lower --rate.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from '@clickhouse/client';
import { generateTraffic } from '../bin/sim/traffic.ts';
import { type ParleyProcess, freePort, spawnParley, waitFor } from '../test/helpers/parley-process.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string' },
    'kill-every': { type: 'string', default: '5' },
    'report-every': { type: 'string', default: '60' },
    batch: { type: 'string', default: '1000' },
    kafka: { type: 'boolean', default: false },
  },
});
const KAFKA = values.kafka;
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate ?? (KAFKA ? 8000 : 36000));
const KILL_MS = Number(values['kill-every']) * 60_000;
const REPORT_MS = Number(values['report-every']) * 1000;
const BATCH = Number(values.batch);
for (const [k, v] of Object.entries({ MINUTES, RATE, KILL_MS, REPORT_MS, BATCH }))
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number`);
const WARMUP_MS = Math.min(5 * 60_000, (MINUTES * 60_000) / 4);
const BROKERS = process.env.PARLEY_KAFKA_BROKERS || '127.0.0.1:19092';

const run = `soak${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const key = `soak-admin-${randomBytes(12).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'parley-soak-'));

// A pool of realistic events, sent again and again under fresh ids.
type SimEvent = ReturnType<typeof generateTraffic> extends Iterable<infer T> ? T : never;
const pool: SimEvent[] = [];
for (const e of generateTraffic({ seed: 'soak', businesses: 50, users: 20_000, days: 7, now: Date.now() })) {
  pool.push(e);
  if (pool.length === 100_000) break;
}

type Instance = { name: string; p: ParleyProcess; startedAt: number; rss: number[]; warmRss?: number };
const instances: Instance[] = [];
const rssOf = (pid: number | undefined) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
};

const store = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', '0'], {
  PARLEY_DATA_DIR: join(dir, 'store'),
});
const chUrl = await store.waitForOutput(/dev-clickhouse is listening on (http:\S+)/);
const ch = createClient({ url: chUrl });
instances.push({ name: 'dev-clickhouse', p: store, startedAt: Date.now(), rss: [] });

const ingestPort = await freePort();
const common = {
  PARLEY_CLICKHOUSE_URL: `${chUrl}/parley`,
  PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
  PARLEY_RATE_LIMIT_KEY_REQUESTS: '0',
  ...(KAFKA
    ? {
        PARLEY_KAFKA_BROKERS: BROKERS,
        PARLEY_TOPIC_PREFIX: `${run}.`,
        PARLEY_HASH_SECRET: randomBytes(16).toString('hex'),
      }
    : {}),
};
const roles = KAFKA
  ? [
      { name: 'ingest', args: ['start', '--role', 'ingest'], port: String(ingestPort) },
      { name: 'processors-1', args: ['start', '--role', 'processors'], port: '0' },
      { name: 'processors-2', args: ['start', '--role', 'processors'], port: '0' },
    ]
  : [{ name: 'parley', args: ['start'], port: String(ingestPort) }];
const urls = new Map<string, string>();

async function start(r: (typeof roles)[number]) {
  const p = spawnParley(r.name, r.args, {
    ...common,
    PARLEY_PORT: r.port,
    PARLEY_DATA_DIR: join(dir, r.name),
  });
  urls.set(r.name, await p.waitForOutput(/Parley is listening on (http:\S+)/, 120_000));
  instances.push({ name: r.name, p, startedAt: Date.now(), rss: [] });
}
for (const r of roles) await start(r);
const ingestUrl = `http://127.0.0.1:${ingestPort}`;

// ---- traffic: paced batches; one that is not acknowledged is sent again (same ids) until it is.
let acked = 0;
let sentBatches = 0;
let retries = 0;
let sending = true;
const retry: { body: string; size: number }[] = [];
let inFlight = 0;
function nextBatch() {
  const b = sentBatches++;
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    const e = pool[(b * BATCH + i) % pool.length];
    events.push({ ...e, event_id: `${run}-${b}-${i}` });
  }
  return { body: JSON.stringify(events), size: BATCH };
}
async function send(batch: { body: string; size: number }) {
  inFlight++;
  try {
    const res = await fetch(`${ingestUrl}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: batch.body,
    });
    const out = (await res.json()) as { accepted?: number };
    if (res.status === 202 && out.accepted === batch.size) acked += batch.size;
    else if (res.status === 503 || res.status === 429) throw new Error(String(res.status));
    else throw new Error(`ingest answered ${res.status}: ${JSON.stringify(out).slice(0, 300)}`);
  } catch (err) {
    if (/ingest answered/.test((err as Error).message)) throw err;
    retries++;
    retry.push(batch); // down (restarting) or busy: the same batch again later
  } finally {
    inFlight--;
  }
}
const t0 = Date.now();
const sender = (async () => {
  const tickMs = 100;
  let owed = 0;
  while (sending) {
    owed += (RATE * tickMs) / 1000;
    while (owed >= BATCH && inFlight < 8) {
      owed -= BATCH;
      send(retry.shift() ?? nextBatch()).catch((err) => {
        console.error(String(err));
        process.exitCode = 1;
      });
    }
    if (owed > BATCH * 8) owed = BATCH * 8; // behind: offer no backlog beyond the in-flight cap
    await new Promise((r) => setTimeout(r, tickMs));
  }
  while (retry.length || inFlight) {
    const next = inFlight < 8 ? retry.shift() : undefined;
    if (next !== undefined) send(next);
    await new Promise((r) => setTimeout(r, 50));
  }
})();

// ---- measurements
async function stored() {
  const rs = await ch.query({
    query: 'SELECT count() AS n, uniqExact(event_id) AS ids FROM parley.events FINAL',
    format: 'JSONEachRow',
  });
  const [r] = await rs.json<{ n: string | number; ids: string | number }>();
  return { n: Number(r.n), ids: Number(r.ids) };
}
async function lag() {
  let total = 0;
  for (const [name, url] of urls) {
    if (!KAFKA && name !== 'parley') continue;
    if (KAFKA && !name.startsWith('processors')) continue;
    const text = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })
      .then((r) => r.text())
      .catch(() => '');
    for (const line of text.split('\n'))
      if (line.startsWith('parley_processor_lag_messages{')) total += Number(line.split(' ').at(-1));
  }
  return total;
}
const live = () => instances.filter((i) => i.p.child.exitCode === null && i.p.child.signalCode === null);
const mb = (b: number) => (Number.isFinite(b) ? `${(b / 1024 / 1024).toFixed(0)} MB` : '-');

async function report() {
  const now = Date.now();
  for (const i of live()) {
    const r = rssOf(i.p.child.pid);
    i.rss.push(r);
    if (i.warmRss === undefined && now - i.startedAt >= WARMUP_MS) i.warmRss = r;
  }
  const s = await stored().catch(() => ({ n: Number.NaN, ids: Number.NaN }));
  const l = await lag();
  const mem = live()
    .map((i) => `${i.name} ${mb(i.rss.at(-1) ?? Number.NaN)}`)
    .join(', ');
  console.log(
    `[${((now - t0) / 60_000).toFixed(1)} min] acknowledged ${acked}, stored ${s.n} (${s.ids} ids), lag ${l}, retried batches ${retries} | ${mem}`,
  );
}

let kills = 0;
const killer = setInterval(async () => {
  kills++;
  const r = KAFKA ? roles[1 + (kills % 2)] : roles[0];
  const victim = live().find((i) => i.name === r.name);
  if (!victim) return;
  console.log(
    `[${((Date.now() - t0) / 60_000).toFixed(1)} min] ${KAFKA ? 'killing' : 'restarting'} ${r.name}`,
  );
  await victim.p.stop(KAFKA ? 'SIGKILL' : 'SIGTERM');
  await start(r).catch((err) => {
    console.error(`${r.name} did not start again: ${err}`);
    process.exitCode = 1;
  });
}, KILL_MS);
const reporter = setInterval(() => {
  report().catch((err) => console.error(`report failed: ${err}`));
}, REPORT_MS);

await new Promise((r) => setTimeout(r, MINUTES * 60_000));
clearInterval(killer);
clearInterval(reporter);
sending = false;
await sender;
let final = await stored();
try {
  final = await waitFor(
    'every acknowledged event stored',
    async () => {
      const s = await stored();
      return s.n >= acked && s;
    },
    300_000,
    1000,
  );
} catch (err) {
  console.error(String(err));
}
await report();
const growth = live()
  .flatMap((i) =>
    i.warmRss === undefined ? [] : [{ name: i.name, warm: i.warmRss, last: i.rss.at(-1) ?? 0 }],
  )
  .map((g) => ({ ...g, growth: g.last / g.warm - 1 }));
printTable(`Resident memory after warm-up (${WARMUP_MS / 1000} s) and at the end`, [
  ['process', 'RSS after warm-up', 'RSS at the end', 'growth'],
  ...growth.map((g) => [
    g.name,
    mb(g.warm),
    mb(g.last),
    `${(g.growth * 100).toFixed(1)}%${g.name === 'dev-clickhouse' ? ' (store; not judged)' : ''}`,
  ]),
]);
const exact = final.n === acked && final.ids === acked;
// Parley's processes are judged; the store's server (its caches fill as data grows) is shown only.
const judged = growth.filter((g) => g.name !== 'dev-clickhouse');
const bounded = judged.length > 0 && judged.every((g) => g.growth < 0.1);
console.log(
  `soak ${MINUTES} min at ${RATE} events/s (${KAFKA ? 'Kafka' : 'embedded'}), ${kills} ${KAFKA ? 'processor kills' : 'restarts'}: acknowledged ${acked}, stored ${final.n} (${final.ids} distinct) — ${exact ? 'acknowledged = stored' : 'MISMATCH'}; Parley's memory growth after warm-up ${bounded ? '< 10%' : 'NOT under 10% (or no process lived past warm-up)'}`,
);
if (!exact || !bounded) process.exitCode = 1;

for (const i of live().reverse()) await i.p.stop();
await ch.close();
await rm(dir, { recursive: true, force: true });
