// Ingest throughput on the embedded defaults: events/s from HTTP (batches of 1,000) until they are
// queryable in ClickHouse, against a baseline measured in the same run: the same rows inserted
// straight into the embedded engine with @clickhouse/client.
//
//   node bench/run.js ingest [--events 300000] [--concurrency 4] [--batch 1000] [--profile DIR]
//                            [--node-flags "…"]
//
// Parley runs as its own process (`npm start`'s command, as a user runs it); the baseline runs in a
// process of its own before Parley starts, so the two never share the CPU (the embedded engine
// keeps merging in the background for a while after an insert).

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../core/config.ts';
import { normalizeEvent } from '../core/events/normalize.ts';
import { createLogger } from '../core/log.ts';
import { createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { toRow } from '../processors/sink.ts';
import { freePort, metric, spawnIn, waitFor, waitHealthy } from '../test/helpers/process.ts';
import { newKey } from '../test/helpers/app.ts';
import { cpuByThread, cpuSeconds } from './cpu.ts';
import { printTable } from './table.ts';
import { simEvents } from './traffic.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '300000' },
    concurrency: { type: 'string', default: '4' },
    batch: { type: 'string', default: '1000' },
    phase: { type: 'string', default: 'all' },
    // Writes a V8 CPU profile of the Parley process into this directory.
    profile: { type: 'string' },
    // Node's flags for Parley's process instead of those of `npm start` ('' for none).
    'node-flags': { type: 'string' },
  },
});
const N = Number(values.events);
const CONCURRENCY = Number(values.concurrency);
const BATCH = Number(values.batch);

// Realistic events from the simulator, made unique per run so nothing is deduplicated away.
const now = Date.now();
const run = `b${now.toString(36)}`;
const events = simEvents(N, 'bench-ingest', (i) => `${run}-${i}`, now);
const n = events.length;
// Encoded once, sent over keep-alive connections with node:http: the load generator shares the
// machine with Parley, so it does as little work per request as it can.
const bodies: { body: Buffer; count: number }[] = [];
for (let i = 0; i < n; i += BATCH) {
  const slice = events.slice(i, i + BATCH);
  bodies.push({ body: Buffer.from(JSON.stringify(slice)), count: slice.length });
}

async function baseline(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-base-'));
  const store = await createStore(parseConfig({ PARLEY_DATA_DIR: dir }));
  await migrate(store, createLogger({ level: 'silent' }));
  // The same rows the sink writes: normalised (as ingest does) before the clock starts.
  const rows = events.map((e) => {
    const r = normalizeEvent(e, { now: Date.now(), maxFutureMs: 300_000, keywords: [] });
    if (!r.ok) throw new Error(r.error);
    return toRow(r.value);
  });
  const chunk = 20_000; // the sink's default batch size
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += chunk) {
    await store.client.insert({
      table: `${store.database}.events`,
      values: rows.slice(i, i + chunk),
      format: 'JSONEachRow',
    });
  }
  const rs = await store.client.query({
    query: `SELECT count() c FROM ${store.database}.events FINAL`,
    format: 'JSONEachRow',
  });
  const [{ c }] = await rs.json<{ c: string }>();
  const secs = (performance.now() - t0) / 1000;
  if (Number(c) !== n) throw new Error(`baseline stored ${c} of ${n}`);
  await store.close();
  await rm(dir, { recursive: true, force: true });
  return secs;
}

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function post(port: number, key: string, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/events',
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': body.length,
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function parley(): Promise<{
  secs: number;
  cpu: number;
  threads: (readonly [string, number])[];
  ackSecs: number;
  p50: number;
  p99: number;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-ingest-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const key = newKey('ingest');
  const profile = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
  // The README's run command (`npm start`) without npm in between, node's flags included.
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  const [node, ...args] = (pkg.scripts.start as string).split(' ');
  const flags = values['node-flags'];
  const script =
    flags === undefined
      ? args
      : [...flags.split(' ').filter(Boolean), ...args.filter((a) => !a.startsWith('--'))];
  const proc = spawnIn(node, [...profile, ...script], {
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: String(port),
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    // Other PARLEY_* settings of this shell reach Parley, to measure a configuration.
    ...Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => /^PARLEY_/.test(k) && !/^PARLEY_(DATA_DIR|PORT|API_KEYS)$/.test(k),
      ),
    ),
  });
  try {
    await waitHealthy(url, proc);
    const latencies: number[] = [];
    let next = 0;
    const cpu0 = cpuSeconds(proc.child.pid);
    const threads0 = cpuByThread(proc.child.pid);
    const t0 = performance.now();
    const worker = async () => {
      while (next < bodies.length) {
        const { body, count } = bodies[next++];
        const s = performance.now();
        const { status, text } = await post(port, key, body);
        const out = JSON.parse(text) as { accepted: number };
        if (status !== 202 || out.accepted !== count) throw new Error(`ingest answered ${status}: ${text}`);
        latencies.push(performance.now() - s);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const ackSecs = (performance.now() - t0) / 1000;
    await waitFor(
      'all events queryable',
      async () => ((await metric(url, key, 'parley_sink_rows_total')) ?? 0) >= n,
      300_000,
      20,
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(proc.child.pid) - cpu0;
    const threads = [...cpuByThread(proc.child.pid)]
      .map(([name, secs]) => [name, secs - (threads0.get(name) ?? 0)] as const)
      .filter(([, secs]) => secs >= 0.01)
      .sort((a, b) => b[1] - a[1]);
    latencies.sort((a, b) => a - b);
    return {
      secs,
      cpu,
      threads,
      ackSecs,
      p50: latencies[Math.floor(latencies.length * 0.5)],
      p99: latencies[Math.floor(latencies.length * 0.99)],
    };
  } finally {
    proc.kill('SIGTERM');
    await proc.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

if (values.phase === 'baseline') {
  console.log(JSON.stringify({ seconds: await baseline() }));
  process.exit(0);
}
const child = spawnIn('node', ['bench/run.js', 'ingest', '--phase', 'baseline', '--events', String(N)], {});
if ((await child.exited) !== 0) throw new Error(`baseline failed: ${child.stderr()}`);
const base = (JSON.parse(child.stdout().trim().split('\n').at(-1) ?? '') as { seconds: number }).seconds;
const e2e = await parley();
const rate = (s: number) => Math.round(n / s);
printTable(
  `ingest: ${n} events, HTTP batches of ${BATCH}, ${CONCURRENCY} concurrent clients, embedded defaults`,
  [
    ['run', 'seconds', 'events/s', 'ratio'],
    ['baseline: direct insert into the engine', base.toFixed(2), rate(base), '1.00'],
    [
      'parley: HTTP ingest → log → sink → queryable',
      e2e.secs.toFixed(2),
      rate(e2e.secs),
      (base / e2e.secs).toFixed(2),
    ],
    [
      'parley: HTTP acknowledged (202)',
      e2e.ackSecs.toFixed(2),
      rate(e2e.ackSecs),
      (base / e2e.ackSecs).toFixed(2),
    ],
  ],
);
console.log(
  `Parley's CPU time (all threads) from the first request until all were queryable: ${e2e.cpu.toFixed(2)} s, ${((e2e.cpu * 1e6) / n).toFixed(1)} µs per event`,
);
console.log(
  `  by thread: ${e2e.threads.map(([name, secs]) => `${name} ${((secs * 1e6) / n).toFixed(1)}`).join(', ')} (µs per event)`,
);
console.log(
  `request latency per batch of ${BATCH}: p50 ${e2e.p50.toFixed(1)} ms, p99 ${e2e.p99.toFixed(1)} ms`,
);
console.log(
  `targets: ≥ 50,000 events/s end to end (${rate(e2e.secs) >= 50_000 ? 'met' : 'NOT met'}), ≥ 0.5 of baseline (${base / e2e.secs >= 0.5 ? 'met' : 'NOT met'})`,
);
