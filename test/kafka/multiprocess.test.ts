import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ParleyProcess, spawnParley, waitFor } from '../helpers/parley-process.ts';
import { kafkaBrokers, unique } from './env.ts';

// Parley's roles as separate processes, as in production but on one machine: ingest, two
// processors in one consumer group and api, each `parley start --role …`, on a real Kafka broker,
// all reaching ClickHouse over HTTP through `parley dev-clickhouse`. Then the failures: a
// processor SIGKILLed mid-stream and replaced, and the store killed and brought back.

const brokers = kafkaBrokers(); // the Kafka suite runs on a real broker or fails
const prefix = `${unique('mp')}.`;
const topic = `${prefix}parley.events`;
const group = `${prefix}parley-sink`;
const key = `mp-admin-${randomBytes(12).toString('hex')}`;

let dir: string;
let chPort: number | undefined;
let store: ParleyProcess;
let ingest: { p: ParleyProcess; url: string };
let api: { p: ParleyProcess; url: string };
const processors: ParleyProcess[] = [];
let ch: ClickHouseClient;
let admin: Admin;

/** dev-clickhouse on a free port; restarted, on the port it had before. */
async function startStore() {
  const p = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', String(chPort ?? 0)], {
    PARLEY_DATA_DIR: join(dir, 'store'),
  });
  chPort = Number(new URL(await p.waitForOutput(/dev-clickhouse is listening on (http:\S+)/)).port);
  return p;
}

async function startRole(role: 'ingest' | 'processors' | 'api', name: string = role) {
  const p = spawnParley(name, ['start', '--role', role], {
    PARLEY_PORT: '0',
    PARLEY_DATA_DIR: join(dir, name),
    PARLEY_KAFKA_BROKERS: brokers.join(','),
    PARLEY_CLICKHOUSE_URL: `http://127.0.0.1:${chPort}/parley`,
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_TOPIC_PREFIX: prefix,
    PARLEY_TOPIC_PARTITIONS: '4',
    PARLEY_SINK_BATCH_SIZE: '5000',
    PARLEY_SINK_BATCH_WAIT_MS: '100',
  });
  const url = await p.waitForOutput(/Parley is listening on (http:\S+)/);
  return { p, url };
}

const event = (business: string, id: string, i: number) => ({
  event_id: id,
  type: i % 10 === 0 ? 'order.placed' : 'message.received',
  occurred_at: new Date(Date.now() - 60_000 + (i % 1000)).toISOString(),
  business_id: business,
  user_id: `u${i % 997}`,
  channel: 'whatsapp',
  props: i % 10 === 0 ? { order_id: `o${i}`, value: i % 50 } : { text_length: i % 80 },
});

/** Posts one batch to ingest; the ids are acknowledged only on 202. */
async function post(business: string, ids: string[], offset: number): Promise<number> {
  const res = await fetch(`${ingest.url}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(ids.map((id, i) => event(business, id, offset + i))),
  });
  const body = (await res.json()) as { accepted?: number };
  if (res.status === 202) expect(body.accepted).toBe(ids.length);
  return res.status;
}

/** Sends `total` events in batches from `clients` concurrent senders; returns the acknowledged ids. */
async function stream(
  business: string,
  total: number,
  batch: number,
  clients: number,
  onProgress?: (acked: number) => void,
) {
  const acked: string[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  const sender = async () => {
    while (next < total) {
      const from = next;
      next += batch;
      const ids = Array.from({ length: Math.min(batch, total - from) }, (_, i) => `${business}-${from + i}`);
      const status = await post(business, ids, from);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status === 202) acked.push(...ids);
      onProgress?.(acked.length);
    }
  };
  await Promise.all(Array.from({ length: clients }, sender));
  return { acked, statuses };
}

async function stored(business: string) {
  const rs = await ch.query({
    query:
      'SELECT count() AS n, uniqExact(event_id) AS u FROM parley.events FINAL WHERE business_id = {b:String}',
    query_params: { b: business },
    format: 'JSONEachRow',
  });
  return ((await rs.json()) as { n: number; u: number }[])[0] as { n: number; u: number };
}

async function committed() {
  const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  return (offsets?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

async function endOffsets() {
  return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-multiprocess-'));
  store = await startStore();
  ch = createClient({ url: `http://127.0.0.1:${chPort}` });
  // Ingest first: it migrates and creates the topics; the others then find them in place.
  ingest = await startRole('ingest');
  const [p1, p2, a] = await Promise.all([
    startRole('processors', 'processors-1'),
    startRole('processors', 'processors-2'),
    startRole('api'),
  ]);
  processors.push(p1.p, p2.p);
  api = a;
  admin = new Kafka({ clientId: 'multiprocess-test', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
}, 180_000);

afterAll(async () => {
  await admin?.disconnect();
  await ch?.close();
  await Promise.all([ingest?.p, api?.p, ...processors].filter(Boolean).map((p) => p?.stop()));
  await store?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('roles as separate processes', () => {
  it('carries events from the ingest process through two processors in one group to the api process', async () => {
    const { acked, statuses } = await stream('b-e2e', 2000, 250, 2);
    expect([...statuses.keys()]).toEqual([202]);
    const members = await waitFor('both processors in the group', async () => {
      const [g] = (await admin.describeGroups([group])).groups;
      return g?.state === 'Stable' && g.members.length === 2 && g.members;
    });
    expect(members.map((m) => m.clientId).length).toBe(2);

    const read = async () => {
      const res = await fetch(`${api.url}/v1/events?business_id=b-e2e&limit=1000`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(res.status).toBe(200);
      return (await res.json()) as {
        events: { event_id: string; business_id: string }[];
        next: string | null;
      };
    };
    await waitFor(
      'events queryable through the api',
      async () => (await stored('b-e2e')).n === acked.length,
      60_000,
    );
    const page = await read();
    expect(page.events).toHaveLength(1000);
    expect(page.next).not.toBeNull();
    expect(new Set(page.events.map((e) => e.event_id)).size).toBe(1000);
    expect(page.events.every((e) => e.business_id === 'b-e2e' && acked.includes(e.event_id))).toBe(true);
    expect(await stored('b-e2e')).toEqual({ n: 2000, u: 2000 });

    // The same events sent again, re-stamped: acknowledged, and stored no second time.
    const again = await stream('b-e2e', 2000, 250, 2);
    expect([...again.statuses.keys()]).toEqual([202]);
    await waitFor('the copies consumed', async () => (await committed()) === (await endOffsets()), 60_000);
    expect(await stored('b-e2e')).toEqual({ n: 2000, u: 2000 });
  }, 180_000);

  it('stores every acknowledged event exactly once when a processor is SIGKILLed mid-stream and another joins', async () => {
    const total = 200_000;
    let killed = false;
    let replacement: Promise<{ p: ParleyProcess; url: string }> | undefined;
    const started = Date.now();
    const { acked, statuses } = await stream('b-crash', total, 1000, 4, (n) => {
      if (!killed && n >= total * 0.3) {
        killed = true;
        processors[0]?.child.kill('SIGKILL');
        replacement = startRole('processors', 'processors-3');
      }
    });
    const ingestMs = Date.now() - started;
    expect(killed).toBe(true);
    expect(await processors[0]?.exited).toBe(-1);
    const p3 = await (replacement as Promise<{ p: ParleyProcess; url: string }>);
    processors.splice(0, 1, p3.p);
    expect([...statuses.keys()]).toEqual([202]);
    expect(acked.length).toBe(total);

    await waitFor(
      'every acknowledged event stored',
      async () => (await stored('b-crash')).n >= total,
      150_000,
      500,
    );
    const drainedMs = Date.now() - started;
    const final = await stored('b-crash');
    expect(final).toEqual({ n: total, u: total });
    // Exactly the acknowledged ids: `total` distinct sequence numbers, all within 0 … total-1.
    const rs = await ch.query({
      query:
        "SELECT min(toUInt32(splitByChar('-', event_id)[3])) AS lo, max(toUInt32(splitByChar('-', event_id)[3])) AS hi FROM parley.events FINAL WHERE business_id = 'b-crash'",
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ lo: 0, hi: total - 1 }]);
    const [g] = (await admin.describeGroups([group])).groups;
    expect(g?.members.length).toBe(2);
    process.stderr.write(
      `multiprocess crash test: ${JSON.stringify({ total, ingestMs, drainedMs, eventsPerSecond: Math.round(total / (drainedMs / 1000)) })}\n`,
    );
  }, 240_000);

  it('stops committing while the store is down, retries, and catches up without loss or duplicates once it is back', async () => {
    const before = await stream('b-outage', 5000, 500, 2);
    expect([...before.statuses.keys()]).toEqual([202]);
    await waitFor('caught up before the outage', async () => (await stored('b-outage')).n === 5000, 60_000);
    await waitFor(
      'offsets committed before the outage',
      async () => (await committed()) === (await endOffsets()),
      30_000,
    );

    store.child.kill('SIGKILL');
    expect(await store.exited).toBe(-1);
    const committedAtOutage = await committed();
    const endAtOutage = await endOffsets();
    const during = await stream('b-outage-2', 20_000, 1000, 2);
    expect([...during.statuses.keys()]).toEqual([202]); // ingest needs only the bus
    await new Promise((r) => setTimeout(r, 4000));
    // The processors could not store the new events, so they committed none of them: lag grew.
    const endDuring = await endOffsets();
    expect(endDuring - endAtOutage).toBe(20_000);
    expect(await committed()).toBe(committedAtOutage);
    for (const p of processors) expect(p.output()).toMatch(/batch failed/);

    store = await startStore(); // same port, same data directory
    await waitFor(
      'caught up after the outage',
      async () => (await stored('b-outage-2')).n >= 20_000,
      120_000,
      500,
    );
    expect(await stored('b-outage-2')).toEqual({ n: 20_000, u: 20_000 });
    expect(await stored('b-outage')).toEqual({ n: 5000, u: 5000 });
    await waitFor(
      'offsets committed after the outage',
      async () => (await committed()) === (await endOffsets()),
      60_000,
    );
  }, 240_000);
});
