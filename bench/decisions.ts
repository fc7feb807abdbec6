// POST /v1/decisions under load, against a baseline measured in the same run: a bare Fastify
// route that answers constant JSON. The decision engine holds 50 live campaigns and the segment
// membership of 1M users × 20 segments (loaded into the index directly, as the membership topic
// would). A served decision is an offer held in memory and logged to the offers topic in batches,
// as in production; confirmations (POST /v1/impressions, 100 tokens a request) are published
// durably as sponsored.served. After the HTTP rows, the serving process makes --decisions more
// offers in process (decide, sign, log: the route's work without HTTP) and reports its memory
// before, after, and after a full collection.
//
//   node bench/run.js decisions [--seconds 10] [--connections 10] [--users 1000000] [--brokers host:port]
//                               [--decisions 1000000] [--rate N] [--profile DIR] [--work-us 40]
//
// The servers run in a child process (with the node flags of `parley start`) so the load generator
// (autocannon, on 127.0.0.1) does not share their event loop or memory. The child reports its
// resident memory after loading the index, and its memory and CPU time after each row: CPU time
// per request is the figure to compare on a busy machine, where req/s are not.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { z } from 'zod';
import { decide } from '../api/decisions/engine.ts';
import type { DecisionEngine } from '../api/decisions/feed.ts';
import { impressionsRoute } from '../api/decisions/impressions-route.ts';
import { createOfferLog } from '../api/decisions/offer-log.ts';
import { decisionsRoute, plainDecision } from '../api/decisions/route.ts';
import { seededRng } from '../api/decisions/rng.ts';
import { DecisionState, offerFacts } from '../api/decisions/state.ts';
import type { Campaign } from '../core/campaigns/schema.ts';
import { parseConfig } from '../core/config.ts';
import { createLocalBus } from '../core/bus/local.ts';
import { EventFeed } from '../core/events/feed.ts';
import { createAuth } from '../core/http/auth.ts';
import { createHttp, requireRole } from '../core/http/fastify.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { signOffer } from '../core/offers/token.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    // The CPU time the calibration row spends per request before answering as the bare route.
    'work-us': { type: 'string', default: '40' },
    connections: { type: 'string', default: '10' },
    users: { type: 'string', default: '1000000' },
    brokers: { type: 'string' },
    decisions: { type: 'string', default: '1000000' },
    // Requests per second in every row (default: as many as are answered). At one fixed rate the
    // rows' CPU time per request compares even on a busy machine, where the rates would differ.
    rate: { type: 'string' },
    serve: { type: 'boolean', default: false },
    // Writes a V8 CPU profile of the serving process into this directory.
    profile: { type: 'string' },
  },
});
const USERS = Number(values.users);
const SEGMENTS = 20;
const CAMPAIGNS = 50;
const KEY = 'pk_bench_adserver_0123456789abcdef';
const MB = (n: number) => (n / 1024 / 1024).toFixed(0);
const TOKEN_KEY = Buffer.alloc(32, 7);
/** The last 1% of users belong to no segment: every campaign is checked and none matches. */
const UNTARGETED_FROM = Math.floor(USERS * 0.99);

function gc() {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Loads the index the way the membership and events topics would fill it. */
function loadIndex(state: DecisionState) {
  const rng = seededRng(42);
  const segs = Array.from({ length: SEGMENTS }, (_, i) => `seg_bench_${i}`);
  for (let u = 0; u < USERS; u++) {
    const id = `u_${u.toString(36).padStart(6, '0')}`;
    state.noteConversation('biz_bench', id);
    if (u < UNTARGETED_FROM) for (const s of segs) if (rng() < 0.3) state.setMember(s, id, true);
  }
  // 50 live campaigns for biz_bench, whose users all have a conversation with it; each targets
  // segments, so a decision for an untargeted user checks every candidate and serves none.
  const campaigns: Campaign[] = Array.from({ length: CAMPAIGNS }, (_, i): Campaign => {
    return {
      id: `cmp_bench_${i}`,
      business_id: 'biz_bench',
      name: `bench ${i}`,
      status: 'active',
      creative: { text: `Sponsored message ${i}`, buttons: [{ title: 'Book' }] },
      targeting: {
        segments_any: [segs[i % SEGMENTS], segs[(i + 7) % SEGMENTS]],
        segments_none: [segs[(i + 3) % SEGMENTS]],
        channels: ['webchat', 'messenger', 'whatsapp'],
      },
      schedule: { start: '2026-01-01T00:00:00Z' },
      budget: { total_micros: 1e13, daily_micros: 1e12 },
      bid: i % 2 ? { cpm_micros: 1_000_000 + i * 10_000 } : { cpc_micros: 200_000 + i * 1000 },
      frequency_cap: { max: 3, per_seconds: 86_400 },
      pacing: i % 3 ? 'asap' : 'even',
      version: 1,
      created_at: '2026-01-01T00:00:00Z',
      updated_at: '2026-01-01T00:00:00Z',
      deleted: false,
    };
  });
  state.setCampaigns(campaigns);
}

async function serve() {
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-decisions-'));
  const config = parseConfig({ PARLEY_DATA_DIR: dir, PARLEY_LOG_LEVEL: 'silent' });
  const logger = createLogger({ level: 'silent' });
  gc();
  const rssBefore = process.memoryUsage().rss;
  const state = new DecisionState({ holdMs: config.decisions.holdMs });
  const t0 = performance.now();
  loadIndex(state);
  const loadMs = performance.now() - t0;
  gc();
  const mem = process.memoryUsage();

  // Decisions are published where production would: the embedded log, or Kafka with --brokers.
  const prefix = values.brokers ? `bench-${Date.now().toString(36)}.` : '';
  const topic = `${prefix}parley.events`;
  const offersTopic = `${prefix}parley.offers`;
  const bus = values.brokers
    ? await (await import('../core/bus/kafka.ts')).createKafkaBus({
        brokers: values.brokers.split(','),
        clientId: 'parley-bench',
        logger,
        partitions: 4,
        replication: 1,
      })
    : await createLocalBus({ dir: join(dir, 'log'), logger });
  await bus.ensureTopics([
    { name: topic, partitions: 4 },
    { name: offersTopic, partitions: 1 },
  ]);
  const metrics = createMetrics();
  const offerLog = createOfferLog({ bus, topic: offersTopic, metrics, logger });
  const rng = seededRng(7);
  const engine: DecisionEngine = {
    state,
    isReady: () => true,
    ready: Promise.resolve(),
    reload: async () => {},
    decide: (req, nowMs = Date.now()) =>
      decide(state, req, {
        nowMs,
        rng,
        policy: {
          quietPeriodMs: config.decisions.quietPeriodMs,
          channel: config.decisions.channelPolicy[req.channel],
        },
      }),
    status: () => ({ ready: true, campaigns: state.campaignCount, users: state.users.size, behind: 0 }),
    stop: async () => {},
  };
  // With the rate limits a default start has (per key on this route, failed authentications).
  const app = await createHttp({ logger, bodyLimit: 1 << 20, metrics, rateLimit: config.rateLimit });
  const auth = createAuth({ keys: [{ key: KEY, role: 'adserver' }] });
  // Parley's HTTP stack alone (auth, zod body, error shape, metrics) answering constant JSON: how
  // much of the gap to the bare route is the stack every Parley route shares.
  app.post(
    '/bench/constant',
    {
      onRequest: requireRole(auth, 'adserver'),
      schema: { body: z.object({ user_id: z.string(), business_id: z.string(), channel: z.string() }) },
    },
    async () => ({ decision_id: 'd_0', campaign_id: 'cmp_0', price_micros: 1000 }),
  );
  // The answer path (core/http/answer-path.ts) answering constant JSON: what an ordinary decision
  // costs before the decision itself (the route above answers what it hands over).
  const CONSTANT = JSON.stringify({ decision_id: 'd_0', campaign_id: 'cmp_0', price_micros: 1000 });
  app.post('/bench/answer', { onRequest: requireRole(auth, 'adserver') }, async () => JSON.parse(CONSTANT));
  app.parleyAnswers.post('/bench/answer', {
    auth,
    roles: ['adserver'],
    accept: (v) => plainDecision(v),
    answer: () => ({ status: 200, json: CONSTANT }),
  });
  const feed = new EventFeed(bus);
  await decisionsRoute(app, {
    engine,
    feed,
    auth,
    eventsTopic: topic,
    clickKey: TOKEN_KEY,
    offerLog,
    metrics,
  });
  await impressionsRoute(app, {
    feed,
    auth,
    eventsTopic: topic,
    clickKey: TOKEN_KEY,
    holdMs: config.decisions.holdMs,
    metrics,
  });
  const bare = Fastify();
  bare.post('/bare', async () => ({ decision_id: 'd_0', campaign_id: 'cmp_0', price_micros: 1000 }));
  // The same route spending --work-us of CPU per request first: how far a fixed amount of work
  // per request moves the ratio to the bare route on this machine (a calibration, not a target).
  const workNs = BigInt(Math.round(Number(values['work-us']) * 1000));
  bare.post('/bare-work', async () => {
    const until = process.hrtime.bigint() + workNs;
    while (process.hrtime.bigint() < until);
    return { decision_id: 'd_0', campaign_id: 'cmp_0', price_micros: 1000 };
  });
  // The serving process's memory after a full collection, asked between the rows.
  // With it, the process's CPU time before and after that collection, so each row's CPU time per
  // request excludes it (a measure that holds on a busy machine, where req/s do not).
  const cpuUs = () => {
    const c = process.cpuUsage();
    return c.user + c.system;
  };
  // Time in garbage collection pauses (of the main thread), summed as they end.
  let gcUs = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcUs += e.duration * 1000;
  }).observe({ entryTypes: ['gc'] });
  bare.get('/memory', async () => {
    const cpuEndUs = cpuUs();
    const gcEndUs = gcUs;
    gc();
    const m = process.memoryUsage();
    return {
      cpuEndUs,
      cpuStartUs: cpuUs(),
      gcEndUs,
      gcStartUs: gcUs,
      rssMb: m.rss / 1024 / 1024,
      heapMb: m.heapUsed / 1024 / 1024,
      externalMb: m.external / 1024 / 1024,
      buffersMb: m.arrayBuffers / 1024 / 1024,
      // The monotonic clock of CPU profiles (µs), to cut a profile into its rows.
      atUs: Number(process.hrtime.bigint() / 1000n),
    };
  });
  const decisionsUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(
    `${JSON.stringify({
      decisionsUrl,
      bareUrl,
      users: state.users.size,
      loadMs,
      rssIndexMb: (mem.rss - rssBefore) / 1024 / 1024,
      rssMb: mem.rss / 1024 / 1024,
      heapMb: mem.heapUsed / 1024 / 1024,
    })}\n`,
  );
  process.on('SIGTERM', async () => {
    const servedHttp = state.offers.made;
    const memory = () => {
      const m = process.memoryUsage();
      return {
        rssMb: m.rss / 1024 / 1024,
        heapMb: m.heapUsed / 1024 / 1024,
        heapTotalMb: m.heapTotal / 1024 / 1024,
        buffersMb: m.arrayBuffers / 1024 / 1024,
        // The young generation: reserved up to --max-semi-space-size under a high allocation rate.
        youngMb:
          getHeapSpaceStatistics()
            .filter((s) => s.space_name === 'new_space' || s.space_name === 'new_large_object_space')
            .reduce((a, s) => a + s.space_size, 0) /
          1024 /
          1024,
      };
    };
    gc();
    const before = memory();
    // The route's work for each offer, without HTTP: decide, sign the token, log the offer.
    const many = Number(values.decisions);
    const r = seededRng(11);
    const channels = ['webchat', 'messenger', 'whatsapp'];
    const t1 = performance.now();
    for (let i = 0; i < many; i++) {
      const u = Math.floor(r() * UNTARGETED_FROM);
      const { decision } = engine.decide({
        user_id: `u_${u.toString(36).padStart(6, '0')}`,
        business_id: 'biz_bench',
        channel: channels[i % 3],
      });
      if (!decision) continue;
      const f = decision.served;
      offerLog.add(f);
      signOffer(TOKEN_KEY, offerFacts(f));
      if (i % 20_000 === 0) await new Promise((res) => setImmediate(res)); // let the log flush
    }
    const manyMs = performance.now() - t1;
    // Memory is measured once the offers made are logged: the log's queue of offers waiting for
    // the bus (at most 50,000) is a bound of its own, not growth.
    await offerLog.flush();
    const after = memory();
    gc();
    const afterGc = memory();
    process.stdout.write(
      `${JSON.stringify({
        servedHttp,
        many,
        offersInProcess: state.offers.made - servedHttp,
        manyMs,
        held: state.offers.held,
        ringMb: state.offers.bytes / 1024 / 1024,
        before,
        after,
        afterGc,
      })}\n`,
    );
    await offerLog.stop();
    await app.close();
    await bare.close();
    await bus.close();
    await rm(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

function lines(child: ChildProcess) {
  const queue: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  if (!child.stdout) throw new Error('the child was spawned without a stdout pipe');
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(l);
      else queue.push(l);
    }
  });
  return () =>
    new Promise<string>((r) => {
      const l = queue.shift();
      if (l === undefined) waiters.push(r);
      else r(l);
    });
}

async function load(url: string, body: () => string, headers: Record<string, string>) {
  return autocannon({
    url,
    connections: Number(values.connections),
    duration: Number(values.seconds),
    ...(values.rate ? { overallRate: Number(values.rate) } : {}),
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        setupRequest: (req) => ({ ...req, body: body() }),
      },
    ],
  });
}

async function main() {
  const serveArgs = [
    'bench/run.js',
    'decisions',
    '--serve',
    '--users',
    String(USERS),
    '--decisions',
    String(values.decisions),
    '--work-us',
    String(values['work-us']),
  ];
  if (values.brokers) serveArgs.push('--brokers', values.brokers);
  const profile = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
  // The serving process runs with the flags `parley start` gives node (bin/parley.js).
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_NODE_FLAGS ?? '--max-semi-space-size=32').split(' ').filter(Boolean),
      ...profile,
      ...serveArgs,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const next = lines(child);
  const info = JSON.parse(await next());
  const rng = seededRng(1);
  const channels = ['webchat', 'messenger', 'whatsapp'];
  const userId = (from: number, to: number) =>
    `u_${(from + Math.floor(rng() * (to - from))).toString(36).padStart(6, '0')}`;
  const decisionBody = (untargeted = false) =>
    JSON.stringify({
      user_id: untargeted ? userId(UNTARGETED_FROM, USERS) : userId(0, UNTARGETED_FROM),
      business_id: 'biz_bench',
      channel: channels[Math.floor(rng() * channels.length)],
    });
  // Warm both up, then measure the baseline and the decisions route in the same run.
  await load(`${info.bareUrl}/bare`, () => '{}', {});
  type Memory = {
    rssMb: number;
    heapMb: number;
    externalMb: number;
    buffersMb: number;
    atUs: number;
    cpuStartUs: number;
    cpuEndUs: number;
    gcStartUs: number;
    gcEndUs: number;
  };
  const memory: [string, Memory][] = [];
  const noteMemory = async (after: string) => {
    const m = (await (await fetch(`${info.bareUrl}/memory`)).json()) as Memory;
    memory.push([after, m]);
    if (values.profile) process.stderr.write(`profile time ${m.atUs} µs: after the ${after}\n`);
  };
  await noteMemory('bare warm-up');
  const bare = await load(`${info.bareUrl}/bare`, () => '{}', {});
  await noteMemory('bare row');
  const work = await load(`${info.bareUrl}/bare-work`, () => '{}', {});
  await noteMemory('calibration row');
  const auth = { authorization: `Bearer ${KEY}` };
  // Serving changes the engine's state, so it is measured last.
  const stack = await load(`${info.decisionsUrl}/bench/constant`, () => decisionBody(), auth);
  await noteMemory('stack row');
  const answerPath = await load(`${info.decisionsUrl}/bench/answer`, () => decisionBody(), auth);
  await noteMemory('answer path row');
  const none = await load(`${info.decisionsUrl}/v1/decisions`, () => decisionBody(true), auth);
  await noteMemory('204 row');
  const dec = await load(`${info.decisionsUrl}/v1/decisions`, () => decisionBody(), auth);
  await noteMemory('served row');
  // Confirmations: batches of 100 tokens of offers made now (a pool reused; repeats are still
  // published, and storage keeps one impression per decision).
  const pool = Array.from({ length: 20_000 }, (_, i) =>
    signOffer(TOKEN_KEY, {
      decision_id: `d_bench${i.toString(36)}`,
      campaign_id: `cmp_bench_${i % CAMPAIGNS}`,
      business_id: 'biz_bench',
      user_id: userId(0, UNTARGETED_FROM),
      channel: 'webchat',
      thread_id: `t_bench_${i}`,
      price_micros: 1000 + (i % 50),
      at_ms: Date.now(),
    }),
  );
  let next100 = 0;
  const confirm = await load(
    `${info.decisionsUrl}/v1/impressions`,
    () => {
      const tokens = [];
      for (let k = 0; k < 100; k++) tokens.push(pool[next100++ % pool.length]);
      return JSON.stringify({ tokens });
    },
    auth,
  );
  await noteMemory('confirmations row');
  child.kill('SIGTERM');
  const after = JSON.parse(await next());
  /** The serving process's CPU time per request over the row that ended at memory[i]. */
  const cpuPerRequest = (i: number, r: autocannon.Result) =>
    ((memory[i][1].cpuEndUs - memory[i - 1][1].cpuStartUs) / Math.max(1, r.requests.total)).toFixed(0);
  /** Of which in garbage collection pauses. */
  const gcPerRequest = (i: number, r: autocannon.Result) =>
    ((memory[i][1].gcEndUs - memory[i - 1][1].gcStartUs) / Math.max(1, r.requests.total)).toFixed(0);
  const row = (name: string, r: autocannon.Result, i: number) => [
    name,
    Math.round(r.requests.average),
    r.latency.p50,
    r.latency.p99,
    r.non2xx,
    r.errors,
    cpuPerRequest(i, r),
    gcPerRequest(i, r),
  ];
  printTable(
    `POST /v1/decisions: ${CAMPAIGNS} live campaigns, ${info.users} users × ${SEGMENTS} segments in memory, published to ${values.brokers ? `Kafka at ${values.brokers}` : 'the embedded log'}, ${values.connections} connections, ${values.seconds}s each`,
    [
      ['route', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'server CPU µs/req', 'of which GC'],
      row('bare Fastify, constant JSON', bare, 1),
      row(`bare Fastify + ${values['work-us']} µs of work per request`, work, 2),
      row('Parley HTTP stack (Fastify), constant JSON', stack, 3),
      row('Parley answer path, constant JSON', answerPath, 4),
      row('POST /v1/decisions → 200, offer held', dec, 6),
      row('POST /v1/decisions → 204, all 50 checked', none, 5),
      row('POST /v1/impressions, 100 tokens, durable', confirm, 7),
      ['impressions/s confirmed durably', Math.round(confirm.requests.average * 100), '', '', '', '', ''],
      ['ratio served / bare', (dec.requests.average / bare.requests.average).toFixed(2), '', '', '', '', ''],
      ['ratio 204 / bare', (none.requests.average / bare.requests.average).toFixed(2), '', '', '', '', ''],
      [
        `ratio bare + ${values['work-us']} µs / bare`,
        (work.requests.average / bare.requests.average).toFixed(2),
        '',
        '',
        '',
        '',
        '',
      ],
      [
        'ratio Parley stack / bare',
        (stack.requests.average / bare.requests.average).toFixed(2),
        '',
        '',
        '',
        '',
        '',
      ],
      [
        'ratio answer path / bare',
        (answerPath.requests.average / bare.requests.average).toFixed(2),
        '',
        '',
        '',
        '',
        '',
      ],
    ],
  );
  printTable('Serving process memory after each row (after a full collection)', [
    ['after', 'resident MB', 'JS heap MB', 'external MB', 'array buffers MB'],
    ...memory.map(([name, m]) => [
      name,
      m.rssMb.toFixed(0),
      m.heapMb.toFixed(0),
      m.externalMb.toFixed(0),
      m.buffersMb.toFixed(0),
    ]),
  ]);
  printTable('Decision index memory', [
    ['measure', 'value'],
    ['users × segments', `${info.users} × ${SEGMENTS}`],
    ['index load time', `${(info.loadMs / 1000).toFixed(1)} s`],
    ['resident memory added by the index', `${MB(info.rssIndexMb * 1024 * 1024)} MB`],
    ['resident memory of the process', `${MB(info.rssMb * 1024 * 1024)} MB`],
    ['JS heap used', `${MB(info.heapMb * 1024 * 1024)} MB`],
    ['offers made over HTTP', after.servedHttp],
    ['resident memory after the HTTP rows (after a full collection)', `${after.before.rssMb.toFixed(0)} MB`],
    [
      `decisions in process, then`,
      `${after.many} (${after.offersInProcess} offers, ${(after.manyMs / 1000).toFixed(1)} s)`,
    ],
    ['offers held at the end / the bytes of their chunks', `${after.held} / ${after.ringMb.toFixed(1)} MB`],
    ['resident memory after them', `${after.after.rssMb.toFixed(0)} MB`],
    ['… after a full collection', `${after.afterGc.rssMb.toFixed(0)} MB`],
    [
      'growth over the in-process decisions (after collection)',
      `${(after.afterGc.rssMb - after.before.rssMb).toFixed(0)} MB`,
    ],
    [
      'JS heap before / after a full collection',
      `${after.before.heapMb.toFixed(0)} / ${after.afterGc.heapMb.toFixed(0)} MB`,
    ],
    [
      'JS heap reserved before / after a full collection',
      `${after.before.heapTotalMb.toFixed(0)} / ${after.afterGc.heapTotalMb.toFixed(0)} MB`,
    ],
    [
      '… of which the young generation',
      `${after.before.youngMb.toFixed(0)} / ${after.afterGc.youngMb.toFixed(0)} MB`,
    ],
    [
      'array buffers before / after a full collection',
      `${after.before.buffersMb.toFixed(0)} / ${after.afterGc.buffersMb.toFixed(0)} MB`,
    ],
  ]);
}

if (values.serve) await serve();
else await main();
