import { type AddressInfo, type Socket, createServer } from 'node:net';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBus } from '../../core/bus/kafka.ts';
import type { Batch, Bus, InMessage, Subscription } from '../../core/bus/types.ts';
import { isParleyError } from '../../core/errors.ts';
import { createLogger } from '../../core/log.ts';
import { waitFor } from '../helpers/process.ts';
import { kafkaBrokers, unique } from './env.ts';

// The Kafka bus adapter against a real broker: every test has its own topic and group.

const brokers = kafkaBrokers();
const logger = createLogger({ level: 'silent' });
let bus: Bus;
const subs: Subscription[] = [];

beforeAll(async () => {
  bus = await createKafkaBus({ brokers, clientId: 'parley-test', logger, partitions: 4, replication: 1 });
});
afterAll(async () => {
  await Promise.allSettled(subs.map((s) => s.stop()));
  await bus?.close();
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
    const admin = new Kafka({ brokers, clientId: 'parley-test', logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
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
    } finally {
      await admin.disconnect();
    }
  });

  it('delivers every message, in order per key, each key on one partition', async () => {
    const t = await topic();
    const got: InMessage[] = [];
    await subscribe({
      groupId: unique('g'),
      topics: [t],
      handler: async (b) => void got.push(...b.messages),
    });
    // Several publishes in flight at once, as concurrent ingest requests make them.
    const t0 = Date.now();
    await Promise.all([0, 1, 2, 3].map((r) => publishSeq(t, 500, 40, r * 500)));
    const t1 = Date.now();
    await waitFor('all messages', async () => got.length >= 2000, 30_000);
    expect(got.length).toBe(2000);
    const byKey = new Map<string, InMessage[]>();
    for (const m of got) byKey.set(m.key, [...(byKey.get(m.key) ?? []), m]);
    expect(byKey.size).toBe(40);
    for (const [k, list] of byKey) {
      expect(new Set(list.map((m) => m.partition)).size).toBe(1);
      const seqs = list.map((m) => Number(m.value.toString().split(':')[1]));
      // Publishes in flight together may interleave, but one publish's messages for a key keep their order.
      for (let r = 0; r < 4; r++) {
        const mine = seqs.filter((s) => Math.floor((s * 40 + Number(k.slice(1))) / 500) === r);
        expect(mine).toEqual([...mine].sort((a, b) => a - b));
      }
      expect(new Set(seqs).size).toBe(list.length);
    }
    for (const m of got) {
      expect(typeof m.offset).toBe('bigint');
      expect(m.timestamp).toBeGreaterThanOrEqual(t0);
      expect(m.timestamp).toBeLessThanOrEqual(t1);
    }
  });

  it('keeps order for one key across a publish larger than one request', async () => {
    const t = await topic(2);
    const pad = 'x'.repeat(1000);
    const msgs = Array.from({ length: 3000 }, (_, i) => ({
      key: 'one-user',
      value: `${i}:${pad}`,
      headers: { seq: String(i) },
    }));
    await bus.publish(t, msgs); // ~3 MB for one partition: several requests, one after another
    const got: InMessage[] = [];
    await subscribe({
      groupId: unique('g'),
      topics: [t],
      handler: async (b) => void got.push(...b.messages),
      maxBatchSize: 500,
    });
    await waitFor('all messages', async () => got.length >= 3000, 30_000);
    expect(got.map((m) => Number(m.value.toString().split(':')[0]))).toEqual(msgs.map((_, i) => i));
    expect(got.map((m) => m.headers.seq)).toEqual(msgs.map((_, i) => String(i)));
    expect(Number(got[2999].offset - got[0].offset)).toBe(2999);
  });

  it('hands the handler at most maxBatchSize messages of one partition, in offset order', async () => {
    const t = await topic(2);
    await publishSeq(t, 1000, 10);
    const batches: Batch[] = [];
    await subscribe({
      groupId: unique('g'),
      topics: [t],
      maxBatchSize: 64,
      handler: async (b) => void batches.push(b),
    });
    await waitFor(
      'all messages',
      async () => batches.reduce((n, b) => n + b.messages.length, 0) >= 1000,
      30_000,
    );
    for (const b of batches) {
      expect(b.messages.length).toBeLessThanOrEqual(64);
      expect(b.messages.every((m) => m.partition === b.partition && m.topic === t)).toBe(true);
      for (let i = 1; i < b.messages.length; i++)
        expect(b.messages[i].offset).toBe(b.messages[i - 1].offset + 1n);
    }
  });

  it('commits only after the handler: a failed batch comes again, nothing lost', async () => {
    const t = await topic(1);
    const group = unique('g');
    await publishSeq(t, 100, 5);
    const seen: bigint[][] = [];
    const done: InMessage[] = [];
    let failures = 0;
    await subscribe({
      groupId: group,
      topics: [t],
      handler: async (b) => {
        seen.push(b.messages.map((m) => m.offset));
        if (failures < 2) {
          failures++;
          throw new Error('store is down');
        }
        done.push(...b.messages);
      },
    });
    await waitFor('the batch after the failures', async () => done.length >= 100, 30_000);
    expect(failures).toBe(2);
    // The failed batch starts at offset 0 each time, and is delivered again from there.
    expect(seen[0][0]).toBe(0n);
    expect(seen[1][0]).toBe(0n);
    expect(seen[2][0]).toBe(0n);
    expect(done.map((m) => m.offset)).toEqual(Array.from({ length: 100 }, (_, i) => BigInt(i)));
    await waitFor('commit', async () => total(await bus.lag(group, t)) === 0, 10_000);
  });

  it('commits only the prefix the handler reports finished', async () => {
    const t = await topic(1);
    const group = unique('g');
    await publishSeq(t, 30, 3);
    const finished: bigint[] = [];
    await subscribe({
      groupId: group,
      topics: [t],
      // Finishes at most 7 per call: the rest must come again, starting right after.
      handler: async (b) => {
        const n = Math.min(7, b.messages.length);
        finished.push(...b.messages.slice(0, n).map((m) => m.offset));
        return n;
      },
    });
    await waitFor('all finished', async () => finished.length >= 30, 30_000);
    expect(finished).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(i)));
    await waitFor('commit', async () => total(await bus.lag(group, t)) === 0, 10_000);
  });

  it('a restarted consumer resumes from the committed offset', async () => {
    const t = await topic(2);
    const group = unique('g');
    await publishSeq(t, 200, 20);
    const first: InMessage[] = [];
    const s1 = await subscribe({
      groupId: group,
      topics: [t],
      handler: async (b) => void first.push(...b.messages),
    });
    await waitFor('first 200', async () => first.length >= 200, 30_000);
    await s1.stop();
    expect((await bus.lag(group, t)).every((p) => p.committed === p.end)).toBe(true);

    await publishSeq(t, 50, 20, 200);
    const second: InMessage[] = [];
    await subscribe({ groupId: group, topics: [t], handler: async (b) => void second.push(...b.messages) });
    await waitFor('next 50', async () => second.length >= 50, 30_000);
    await new Promise((r) => setTimeout(r, 500)); // nothing old may follow
    expect(first.length).toBe(200);
    expect(second.length).toBe(50);
    const firstIds = new Set(first.map((m) => `${m.partition}/${m.offset}`));
    expect(second.some((m) => firstIds.has(`${m.partition}/${m.offset}`))).toBe(false);
  });

  it('stop() lets the running batch finish and commits it', async () => {
    const t = await topic(1);
    const group = unique('g');
    await publishSeq(t, 20, 2);
    let inHandler!: () => void;
    const entered = new Promise<void>((r) => {
      inHandler = r;
    });
    let finished = 0;
    const s = await subscribe({
      groupId: group,
      topics: [t],
      handler: async (b) => {
        inHandler();
        await new Promise((r) => setTimeout(r, 500));
        finished += b.messages.length;
      },
    });
    await entered;
    await s.stop();
    expect(finished).toBeGreaterThan(0);
    const lag = await bus.lag(group, t);
    expect(Number(lag[0].committed)).toBe(finished);
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

  it("start: 'latest' skips what was there before the group first joined", async () => {
    const t = await topic(2);
    await publishSeq(t, 40, 4);
    const got: InMessage[] = [];
    await subscribe({
      groupId: unique('g'),
      topics: [t],
      start: 'latest',
      handler: async (b) => void got.push(...b.messages),
    });
    await publishSeq(t, 10, 4, 1000);
    await waitFor('new messages', async () => got.length >= 10, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(got.length).toBe(10);
    expect(got.every((m) => Number(m.value.toString().split(':')[1]) >= 250)).toBe(true);
  });

  it('lag() reports committed and end offsets per partition', async () => {
    const t = await topic(3);
    const group = unique('g');
    await publishSeq(t, 90, 30);
    const before = await bus.lag(group, t);
    expect(before.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect(before.every((p) => p.committed === 0n)).toBe(true);
    expect(total(before)).toBe(90);
    let n = 0;
    await subscribe({
      groupId: group,
      topics: [t],
      handler: async (b) => {
        n += b.messages.length;
      },
    });
    await waitFor(
      'consumed and committed',
      async () => n >= 90 && total(await bus.lag(group, t)) === 0,
      30_000,
    );
    const after = await bus.lag(group, t);
    expect(after.reduce((s, p) => s + Number(p.end), 0)).toBe(90);
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
