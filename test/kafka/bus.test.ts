import { type AddressInfo, type Socket, createServer } from 'node:net';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBus } from '../../core/bus/kafka.ts';
import type { Batch, Bus, InMessage, Subscription } from '../../core/bus/types.ts';
import { isParleyError } from '../../core/errors.ts';
import { createLogger } from '../../core/log.ts';
import { waitFor } from '../helpers/process.ts';
import { kafkaBrokers, unique } from './env.ts';
import { busContract } from '../../core/bus/contract.ts';

// The Kafka bus adapter against a real broker: every test has its own topic and group. The Bus
// contract (core/bus/contract.ts) runs here on the broker; below is what only Kafka does.

const brokers = kafkaBrokers();
const logger = createLogger({ level: 'silent' });
let bus: Bus;
const subs: Subscription[] = [];

const admin = new Kafka({ brokers, clientId: 'parley-test', logLevel: logLevel.NOTHING }).admin();

beforeAll(async () => {
  await admin.connect();
  bus = await createKafkaBus({ brokers, clientId: 'parley-test', logger, partitions: 4, replication: 1 });
});
afterAll(async () => {
  await Promise.allSettled(subs.map((s) => s.stop()));
  await bus?.close();
  await admin.disconnect();
});

async function topic(partitions = 4) {
  const name = unique('test.bus');
  await bus.ensureTopics([{ name, partitions }]);
  return name;
}

async function subscribe(o: Parameters<Bus['subscribe']>[0]) {
  const s = await bus.subscribe(o);
  subs.push(s);
  await s.ready;
  return s;
}

/** Publishes n messages over `keys` keys; the value of each is `key:seq` with seq counting per key. */
async function publishSeq(t: string, n: number, keys: number, from = 0) {
  const msgs = Array.from({ length: n }, (_, i) => {
    const k = `u${(from + i) % keys}`;
    return { key: k, value: `${k}:${Math.floor((from + i) / keys)}` };
  });
  await bus.publish(t, msgs);
  return msgs;
}

const total = (lag: { committed: bigint; end: bigint }[]) =>
  lag.reduce((n, p) => n + Number(p.end - p.committed), 0);

busContract('Kafka', {
  async storage() {
    // Other test files share the broker: only groups named for this storage's client count.
    const clientId = unique('parley-test');
    return {
      open: () => createKafkaBus({ brokers, clientId, logger, partitions: 4, replication: 1 }),
      groups: async () =>
        (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(clientId)),
    };
  },
});

describe('Kafka bus', () => {
  it('creates topics with the partitions asked for, and creating them again is harmless', async () => {
    const name = unique('test.bus.create');
    await bus.ensureTopics([
      { name, partitions: 3 },
      { name: `${name}.compact`, partitions: 2, compacted: true },
    ]);
    await bus.ensureTopics([{ name, partitions: 3 }]);
    expect((await bus.lag('nobody', name)).map((p) => p.partition)).toEqual([0, 1, 2]);
    expect((await bus.lag('nobody', `${name}.compact`)).length).toBe(2);
    // The broker itself says which topic is compacted.
    {
      const config = async (topic: string, key: string) => {
        const { resources } = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
        });
        return resources[0].configEntries.find((e) => e.configName === key)?.configValue;
      };
      expect(await config(`${name}.compact`, 'cleanup.policy')).toBe('compact');
      expect(await config(name, 'cleanup.policy')).toBe('delete');
      expect(await config(name, 'message.timestamp.type')).toBe('LogAppendTime');
    }
  });

  it('a member that stops mid-stream hands its partitions over without losing anything', async () => {
    const t = await topic(4);
    const group = unique('g');
    const done = new Set<string>();
    const handler = async (b: Batch) => {
      await new Promise((r) => setTimeout(r, 5)); // some work per batch, so stopping lands mid-stream
      for (const m of b.messages) done.add(m.value.toString());
    };
    const a = await subscribe({ groupId: group, topics: [t], handler, maxBatchSize: 20 });
    await subscribe({ groupId: group, topics: [t], handler, maxBatchSize: 20 });
    const sent = [...(await publishSeq(t, 600, 60)), ...(await publishSeq(t, 600, 60, 600))];
    await waitFor('some progress', async () => done.size >= 100, 30_000, 5);
    const atStop = done.size;
    await a.stop();
    expect(atStop).toBeLessThan(sent.length);
    await waitFor('everything, after the handover', async () => done.size >= sent.length, 30_000);
    expect([...done].sort()).toEqual(sent.map((m) => m.value).sort());
    await waitFor('all committed', async () => total(await bus.lag(group, t)) === 0, 10_000);
  });

  it('two members of one group split the partitions between them', async () => {
    const t = await topic(4);
    const group = unique('g');
    const got = { a: [] as InMessage[], b: [] as InMessage[] };
    await subscribe({ groupId: group, topics: [t], handler: async (b) => void got.a.push(...b.messages) });
    await subscribe({ groupId: group, topics: [t], handler: async (b) => void got.b.push(...b.messages) });
    await publishSeq(t, 800, 80);
    await waitFor('all messages', async () => got.a.length + got.b.length >= 800, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(got.a.length + got.b.length).toBe(800);
    const pa = new Set(got.a.map((m) => m.partition));
    const pb = new Set(got.b.map((m) => m.partition));
    expect(pa.size).toBeGreaterThan(0);
    expect(pb.size).toBeGreaterThan(0);
    expect([...pa].filter((p) => pb.has(p))).toEqual([]);
    expect(new Set([...pa, ...pb]).size).toBe(4);
  });

  it('publish fails fast with a retriable bus error when the broker refuses connections', async () => {
    const dead = await createKafkaBus({
      brokers: ['127.0.0.1:1'],
      clientId: 'parley-test',
      logger,
      partitions: 1,
      replication: 1,
      publishTimeoutMs: 5000,
    });
    const t0 = Date.now();
    const err = await dead.publish('nowhere', [{ key: 'k', value: 'v' }]).catch((e) => e);
    expect(Date.now() - t0).toBeLessThan(2500); // well before the timeout
    expect(isParleyError(err) && err.code).toBe('PARLEY_ERR_BUS_UNAVAILABLE');
    expect(err.retriable).toBe(true);
    await dead.close();
  });

  it('publish gives up at its timeout when the broker never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => void sockets.add(s)); // accepts connections, never replies
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const hung = await createKafkaBus({
      brokers: [`127.0.0.1:${port}`],
      clientId: 'parley-test',
      logger,
      partitions: 1,
      replication: 1,
      publishTimeoutMs: 1000,
    });
    try {
      const t0 = Date.now();
      const err = await hung.publish('nowhere', [{ key: 'k', value: 'v' }]).catch((e) => e);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(isParleyError(err) && err.code).toBe('PARLEY_ERR_BUS_UNAVAILABLE');
    } finally {
      await hung.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
