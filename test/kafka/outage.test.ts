import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Running, startParley } from '../../bin/server.ts';
import { parseConfig } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { type Store, createStore } from '../../core/store/client.ts';
import { newKey } from '../helpers/app.ts';
import { ROOT, freePort, waitFor } from '../helpers/process.ts';
import { kafkaBrokers, kafkaScript } from './env.ts';

// Broker outage: Parley (ingest, processors, api in one process, embedded store) runs on its own
// Kafka broker, which this test stops while clients ingest. While it is down ingest answers 503,
// never 202; once it is back ingest recovers by itself and every acknowledged event is stored
// exactly once. A private broker instance keeps the shared one (other test files) undisturbed.

kafkaBrokers(); // the Kafka suite runs on real brokers or fails
const script = join(ROOT, kafkaScript());
const run = promisify(execFile);
let home: string;
let brokerEnv: NodeJS.ProcessEnv;
let parley: Running | undefined;
let store: Store | undefined;

// Async on purpose: the ingest server runs in this process and must keep answering meanwhile.
const kafka = (cmd: 'up' | 'down') => run('bash', [script, cmd], { env: brokerEnv, timeout: 120_000 });

beforeAll(async () => {
  // Reuse the Kafka jars of the shared installation instead of fetching them again.
  await run('bash', [script, 'fetch'], { timeout: 600_000 });
  home = await mkdtemp(join(tmpdir(), 'parley-kafka-outage-'));
  await symlink(join(process.env.PARLEY_KAFKA_HOME || join(ROOT, '.kafka'), 'lib'), join(home, 'lib'));
  const [port, cport] = [await freePort(), await freePort()];
  brokerEnv = {
    ...process.env,
    PARLEY_KAFKA_HOME: home,
    PARLEY_KAFKA_PORT: String(port),
    PARLEY_KAFKA_CONTROLLER_PORT: String(cport),
  };
  await kafka('up');
}, 180_000);

afterAll(async () => {
  await store?.close();
  await parley?.stop();
  if (home) {
    await kafka('down').catch(() => {});
    await rm(home, { recursive: true, force: true });
  }
});

type Req = { start: number; end: number; status: number; ids: string[] };

it('answers 503 while the broker is down, recovers by itself, and stores every acknowledged event exactly once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-outage-'));
  const key = newKey('admin');
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0', // any free port; the server says which
    PARLEY_KAFKA_BROKERS: `127.0.0.1:${brokerEnv.PARLEY_KAFKA_PORT}`,
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_SINK_BATCH_WAIT_MS: '50',
  });
  expect(config.kafka).toBeDefined();
  expect(config.clickhouse.url).toBeUndefined();
  parley = await startParley(config, {
    roles: ['ingest', 'processors', 'api'],
    logger: createLogger({ level: 'silent' }),
    out: () => {},
  });
  store = await createStore(config); // the same embedded engine as the server's, for checking

  const reqs: Req[] = [];
  let running = true;
  let seq = 0;
  const client = async (c: number) => {
    while (running) {
      const ids = Array.from({ length: 50 }, () => `outage-${c}-${seq++}`);
      const body = ids.map((id, i) => ({
        event_id: id,
        type: 'message.received',
        occurred_at: new Date(Date.now() - 1000).toISOString(),
        business_id: 'b1',
        user_id: `u${i % 37}`,
        channel: 'whatsapp',
        props: { text_length: i },
      }));
      const start = Date.now();
      const res = await fetch(`${parley!.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      await res.arrayBuffer();
      reqs.push({ start, end: Date.now(), status: res.status, ids });
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const clients = [0, 1, 2].map(client);
  const acked = () => reqs.filter((r) => r.status === 202);

  await waitFor('ingest before the outage', async () => acked().length >= 20, 30_000);
  await kafka('down');
  const downAt = Date.now();
  await new Promise((r) => setTimeout(r, 6000));
  const upFrom = Date.now();
  await kafka('up');
  const upAt = Date.now();
  const recovered = await waitFor(
    'a 202 after the broker is back',
    async () => reqs.find((r) => r.start >= upAt && r.status === 202),
    60_000,
  );
  await waitFor(
    'steady ingest after recovery',
    async () => reqs.filter((r) => r.start >= upAt && r.status === 202).length >= 20,
    60_000,
  );
  running = false;
  await Promise.all(clients);

  // Only 202 or 503, ever; nothing fully inside the outage was acknowledged, and 503s came promptly.
  expect(new Set(reqs.map((r) => r.status))).toEqual(new Set([202, 503]));
  const during = reqs.filter((r) => r.start >= downAt && r.end <= upFrom);
  expect(during.length).toBeGreaterThanOrEqual(3);
  expect(during.filter((r) => r.status !== 503)).toEqual([]);
  // Bounded by the publish timeout (5 s); a refused connection is answered well before it.
  expect(Math.max(...during.map((r) => r.end - r.start))).toBeLessThan(6000);
  const sent = new Set(reqs.flatMap((r) => r.ids));
  const ackedIds = new Set(acked().flatMap((r) => r.ids));

  // Every acknowledged event reaches the store exactly once (the sink consumer recovered too).
  const db = store.database;
  const counts = async () => {
    const rs = await store!.client.query({
      query: `SELECT count() AS n, uniqExact(event_id) AS u FROM ${db}.events FINAL`,
      format: 'JSONEachRow',
    });
    return ((await rs.json()) as { n: number; u: number }[])[0];
  };
  await waitFor('acknowledged events stored', async () => (await counts()).n >= ackedIds.size, 60_000, 250);
  const { n, u } = await counts();
  expect(n).toBe(u);
  const rs = await store.client.query({
    query: `SELECT event_id FROM ${db}.events FINAL`,
    format: 'JSONEachRow',
  });
  const stored = new Set(((await rs.json()) as { event_id: string }[]).map((r) => r.event_id));
  expect(stored.size).toBe(n);
  expect([...ackedIds].filter((id) => !stored.has(id))).toEqual([]);
  // Events whose request got 503 may still have landed (at least once), but nothing unknown did.
  expect([...stored].filter((id) => !sent.has(id))).toEqual([]);

  const stats = {
    requests: reqs.length,
    acked: ackedIds.size,
    stored: n,
    duringOutage: during.length,
    max503Ms: Math.max(...reqs.filter((r) => r.status === 503).map((r) => r.end - r.start)),
    recoveryMs: recovered.end - upAt,
  };
  process.stderr.write(`outage test: ${JSON.stringify(stats)}\n`);
}, 240_000);
