import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Assignment, Batch, Bus, InMessage, ReadOptions, SubscribeOptions } from './types.ts';

// The Bus contract, as one suite every bus must pass: core/bus/local.test.ts runs it on the
// embedded log and test/kafka/bus.test.ts on a real broker.

/** Where buses of one test keep their topics and groups: a directory, or a broker. */
export type BusStorage = {
  /** A bus on this storage; closing it and opening another is a restart. */
  open(): Promise<Bus>;
  /** The consumer groups that exist on this storage. */
  groups(): Promise<string[]>;
};

export type BusHarness = {
  /** Storage for one test; with Kafka every test shares the broker and uses unique names. */
  storage(): Promise<BusStorage>;
};

const unique = (base: string) => `${base}-${randomBytes(5).toString('hex')}`;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 300));

/** n messages over `keys` keys; each value is `key:seq`, seq counting per key. */
const seq = (n: number, keys: number, from = 0) =>
  Array.from({ length: n }, (_, i) => {
    const k = `u${(from + i) % keys}`;
    return { key: k, value: `${k}:${Math.floor((from + i) / keys)}` };
  });

const behind = (lag: { committed: bigint; end: bigint }[]) =>
  lag.reduce((n, p) => n + Number(p.end - p.committed), 0);

const values = (ms: InMessage[]) => ms.map((m) => m.value.toString());

export function busContract(name: string, harness: BusHarness) {
  /** Runs a test with a fresh bus and a fresh topic, and closes the bus afterwards. */
  async function withBus(
    partitions: number,
    fn: (bus: Bus, topic: string, storage: BusStorage) => Promise<void>,
  ): Promise<void> {
    const storage = await harness.storage();
    const bus = await storage.open();
    try {
      const topic = unique('contract');
      await bus.ensureTopics([{ name: topic, partitions }]);
      await fn(bus, topic, storage);
    } finally {
      await bus.close();
    }
  }

  async function subscribe(bus: Bus, o: SubscribeOptions) {
    const s = await bus.subscribe(o);
    await s.ready;
    return s;
  }

  async function read(bus: Bus, o: ReadOptions) {
    const r = await bus.read(o);
    await r.ready;
    return r;
  }

  const collect = () => {
    const got: InMessage[] = [];
    return { got, handler: async (b: Batch) => void got.push(...b.messages) };
  };

  describe(`Bus contract: ${name}`, () => {
    describe('subscribe', () => {
      it('delivers every message once, in order per key, each key on one partition', async () => {
        await withBus(4, async (bus, topic) => {
          const { got, handler } = collect();
          await subscribe(bus, { groupId: unique('g'), topics: [topic], handler });
          const t0 = Date.now();
          // Several publishes in flight at once, as concurrent ingest requests make them.
          const sent = [0, 1, 2, 3].map((r) => seq(500, 40, r * 500));
          const written = await Promise.all(sent.map((msgs) => bus.publish(topic, msgs)));
          const t1 = Date.now();
          await until('all messages', () => got.length >= 2000);
          await settle();
          expect(got.length).toBe(2000);
          const byKey = new Map<string, InMessage[]>();
          for (const m of got) byKey.set(m.key, [...(byKey.get(m.key) ?? []), m]);
          expect(byKey.size).toBe(40);
          const partitionOf = await bus.partitioner(topic);
          for (const [k, list] of byKey) {
            expect(new Set(list.map((m) => m.partition))).toEqual(new Set([partitionOf(k)]));
            const seqs = list.map((m) => Number(m.value.toString().split(':')[1]));
            // Publishes in flight together may interleave; one publish keeps a key's order.
            for (let r = 0; r < 4; r++) {
              const mine = seqs.filter((s) => Math.floor((s * 40 + Number(k.slice(1))) / 500) === r);
              expect(mine).toEqual([...mine].sort((a, b) => a - b));
            }
            expect(new Set(seqs).size).toBe(list.length);
          }
          // Each publish answered where it wrote each of its messages.
          const at = new Map(got.map((m) => [m.value.toString(), `${m.partition}/${m.offset}`]));
          sent.forEach((msgs, r) => {
            expect(written[r]).toHaveLength(msgs.length);
            msgs.forEach((m, i) => {
              expect(at.get(String(m.value))).toBe(`${written[r][i].partition}/${written[r][i].offset}`);
            });
          });
          for (const m of got) {
            expect(m.topic).toBe(topic);
            expect(typeof m.offset).toBe('bigint');
            expect(m.timestamp).toBeGreaterThanOrEqual(t0 - 1);
            expect(m.timestamp).toBeLessThanOrEqual(t1 + 1);
          }
        });
      });

      it('keeps one key in order, with its headers, across a publish larger than one request', async () => {
        await withBus(2, async (bus, topic) => {
          const pad = 'x'.repeat(1000);
          const msgs = Array.from({ length: 3000 }, (_, i) => ({
            key: 'one-user',
            value: `${i}:${pad}`,
            headers: { seq: String(i) },
          }));
          const written = await bus.publish(topic, msgs);
          const { got, handler } = collect();
          await subscribe(bus, { groupId: unique('g'), topics: [topic], handler, maxBatchSize: 500 });
          await until('all messages', () => got.length >= 3000);
          expect(written.map((w) => `${w.partition}/${w.offset}`)).toEqual(
            got.map((m) => `${m.partition}/${m.offset}`),
          );
          expect(got.map((m) => Number(m.value.toString().split(':')[0]))).toEqual(msgs.map((_, i) => i));
          expect(got.map((m) => m.headers.seq)).toEqual(msgs.map((_, i) => String(i)));
          expect(Number(got[2999].offset - got[0].offset)).toBe(2999);
        });
      });

      it('hands over at most maxBatchSize messages of one partition, in offset order', async () => {
        await withBus(2, async (bus, topic) => {
          await bus.publish(topic, seq(1000, 10));
          const batches: Batch[] = [];
          await subscribe(bus, {
            groupId: unique('g'),
            topics: [topic],
            maxBatchSize: 64,
            maxWaitMs: 20,
            handler: async (b) => void batches.push(b),
          });
          await until('all messages', () => batches.reduce((n, b) => n + b.messages.length, 0) >= 1000);
          expect(batches.length).toBeGreaterThanOrEqual(16);
          for (const b of batches) {
            expect(b.messages.length).toBeGreaterThan(0);
            expect(b.messages.length).toBeLessThanOrEqual(64);
            expect(b.messages.every((m) => m.partition === b.partition && m.topic === topic)).toBe(true);
            for (let i = 1; i < b.messages.length; i++)
              expect(b.messages[i].offset).toBe(b.messages[i - 1].offset + 1n);
          }
        });
      });

      it('tells the member the partitions it holds before handing it their batches', async () => {
        await withBus(3, async (bus, topic) => {
          const events: string[] = [];
          let assigned: Assignment | undefined;
          await bus.publish(topic, seq(30, 6));
          await subscribe(bus, {
            groupId: unique('g'),
            topics: [topic],
            onAssign: (a) => {
              assigned = a;
              events.push('assign');
            },
            handler: async (b) => void events.push(`batch ${b.partition}`),
          });
          await until('batches', () => events.length >= 2);
          expect(events[0]).toBe('assign');
          expect(assigned?.get(topic)?.slice().sort()).toEqual([0, 1, 2]);
        });
      });

      it('commits only after the handler: a failed batch comes again from its first offset', async () => {
        await withBus(1, async (bus, topic) => {
          const group = unique('g');
          await bus.publish(topic, seq(100, 5));
          const firsts: bigint[] = [];
          const done: InMessage[] = [];
          let failures = 0;
          await subscribe(bus, {
            groupId: group,
            topics: [topic],
            handler: async (b) => {
              firsts.push(b.messages[0].offset);
              if (failures < 2) {
                failures++;
                throw new Error('store is down');
              }
              done.push(...b.messages);
            },
          });
          await until('the batches after the failures', () => done.length >= 100);
          expect(firsts.slice(0, 3)).toEqual([0n, 0n, 0n]);
          expect(done.map((m) => m.offset)).toEqual(Array.from({ length: 100 }, (_, i) => BigInt(i)));
          await until('commit', async () => behind(await bus.lag(group, topic)) === 0);
        });
      });

      it('commits only the prefix the handler reports finished, and goes on right after it', async () => {
        await withBus(1, async (bus, topic) => {
          const group = unique('g');
          await bus.publish(topic, seq(30, 3));
          const finished: bigint[] = [];
          await subscribe(bus, {
            groupId: group,
            topics: [topic],
            handler: async (b) => {
              const n = Math.min(7, b.messages.length);
              finished.push(...b.messages.slice(0, n).map((m) => m.offset));
              return n;
            },
          });
          await until('all finished', () => finished.length >= 30);
          expect(finished).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(i)));
          await until('commit', async () => behind(await bus.lag(group, topic)) === 0);
        });
      });

      it('after a restart, a group resumes from its committed offsets', async () => {
        const storage = await harness.storage();
        const group = unique('g');
        const topic = unique('contract');
        const first = collect();
        const bus1 = await storage.open();
        await bus1.ensureTopics([{ name: topic, partitions: 2 }]);
        await bus1.publish(topic, seq(200, 20));
        await subscribe(bus1, { groupId: group, topics: [topic], handler: first.handler });
        await until('first 200', () => first.got.length >= 200);
        await until('commit', async () => behind(await bus1.lag(group, topic)) === 0);
        // Closing stops every subscription, as a process going down does.
        await bus1.close();

        const bus2 = await storage.open();
        try {
          expect(behind(await bus2.lag(group, topic))).toBe(0);
          await bus2.publish(topic, seq(50, 20, 200));
          const second = collect();
          await subscribe(bus2, { groupId: group, topics: [topic], handler: second.handler });
          await until('next 50', () => second.got.length >= 50);
          await settle();
          expect(first.got.length).toBe(200);
          expect(second.got.length).toBe(50);
          expect(values(second.got).sort()).toEqual(
            seq(50, 20, 200)
              .map((m) => m.value)
              .sort(),
          );
        } finally {
          await bus2.close();
        }
      });

      it('stop() lets the running batch finish and commits it', async () => {
        await withBus(1, async (bus, topic) => {
          const group = unique('g');
          await bus.publish(topic, seq(20, 2));
          let entered!: () => void;
          const inHandler = new Promise<void>((r) => {
            entered = r;
          });
          let finished = 0;
          const s = await subscribe(bus, {
            groupId: group,
            topics: [topic],
            handler: async (b) => {
              entered();
              await new Promise((r) => setTimeout(r, 300));
              finished += b.messages.length;
            },
          });
          await inHandler;
          await s.stop();
          expect(finished).toBeGreaterThan(0);
          expect(Number((await bus.lag(group, topic))[0].committed)).toBe(finished);
        });
      });

      it("start: 'latest' skips what was there before the group first joined", async () => {
        await withBus(2, async (bus, topic) => {
          await bus.publish(topic, seq(40, 4));
          const { got, handler } = collect();
          await subscribe(bus, { groupId: unique('g'), topics: [topic], start: 'latest', handler });
          await bus.publish(topic, seq(10, 4, 1000));
          await until('new messages', () => got.length >= 10);
          await settle();
          expect(values(got).sort()).toEqual(
            seq(10, 4, 1000)
              .map((m) => m.value)
              .sort(),
          );
        });
      });

      it('lag() and offsets() report committed, first and end offsets per partition', async () => {
        await withBus(3, async (bus, topic) => {
          const group = unique('g');
          await bus.publish(topic, seq(90, 30));
          const before = await bus.lag(group, topic);
          expect(before.map((p) => p.partition)).toEqual([0, 1, 2]);
          expect(before.every((p) => p.committed === 0n)).toBe(true);
          expect(behind(before)).toBe(90);
          const offsets = await bus.offsets(topic);
          expect(offsets.map((p) => p.partition)).toEqual([0, 1, 2]);
          expect(offsets.every((p) => p.start === 0n)).toBe(true);
          expect(offsets.reduce((n, p) => n + Number(p.end), 0)).toBe(90);
          const { got, handler } = collect();
          await subscribe(bus, { groupId: group, topics: [topic], handler });
          await until(
            'consumed and committed',
            async () => got.length >= 90 && behind(await bus.lag(group, topic)) === 0,
          );
        });
      });
    });

    describe('ungrouped read', () => {
      it('reads every partition from the beginning, in order, commits nothing and leaves no group', async () => {
        await withBus(3, async (bus, topic, storage) => {
          const groupsBefore = new Set(await storage.groups());
          await bus.publish(topic, seq(300, 30));
          const { got, handler } = collect();
          const r = await read(bus, { topic, from: 'earliest', handler, maxBatchSize: 50 });
          await until('all messages', () => got.length >= 300);
          await bus.publish(topic, seq(30, 30, 300));
          await until('what came after', () => got.length >= 330);
          await r.stop();
          await settle();
          expect(got.length).toBe(330);
          for (let p = 0; p < 3; p++) {
            const offs = got.filter((m) => m.partition === p).map((m) => m.offset);
            expect(offs).toEqual(offs.map((_, i) => BigInt(i)));
          }
          expect((await storage.groups()).filter((g) => !groupsBefore.has(g))).toEqual([]);
        });
      });

      it('reads from chosen offsets per partition; partitions not named start at the beginning', async () => {
        await withBus(2, async (bus, topic) => {
          await bus.publish(topic, seq(100, 10));
          const ends = await bus.offsets(topic);
          const from = new Map([[0, ends[0].end - 3n]]);
          const { got, handler } = collect();
          const r = await read(bus, { topic, from: { offsets: from }, handler });
          const want = 3 + Number(ends[1].end);
          await until('the chosen ranges', () => got.length >= want);
          await settle();
          await r.stop();
          expect(got.length).toBe(want);
          expect(got.filter((m) => m.partition === 0).map((m) => m.offset)).toEqual([
            ends[0].end - 3n,
            ends[0].end - 2n,
            ends[0].end - 1n,
          ]);
        });
      });

      it('reads from a time: the first message the bus accepted at or after it', async () => {
        await withBus(2, async (bus, topic) => {
          await bus.publish(topic, seq(40, 4));
          await new Promise((r) => setTimeout(r, 50));
          const at = Date.now();
          await new Promise((r) => setTimeout(r, 50));
          await bus.publish(topic, seq(20, 4, 40));
          const { got, handler } = collect();
          const r = await read(bus, { topic, from: { timestamp: at }, handler });
          await until('messages after the time', () => got.length >= 20);
          await settle();
          expect(values(got).sort()).toEqual(
            seq(20, 4, 40)
              .map((m) => m.value)
              .sort(),
          );
          expect(got.every((m) => m.timestamp >= at)).toBe(true);
          // A time after the last message starts at the end.
          const later = collect();
          const r2 = await read(bus, {
            topic,
            from: { timestamp: Date.now() + 1000 },
            handler: later.handler,
          });
          await bus.publish(topic, [{ key: 'u0', value: 'new' }]);
          await until('the new message', () => later.got.length >= 1);
          await settle();
          expect(values(later.got)).toEqual(['new']);
          await r.stop();
          await r2.stop();
        });
      });

      it("from 'latest' sees only what is published after it is ready", async () => {
        await withBus(2, async (bus, topic) => {
          await bus.publish(topic, seq(20, 4));
          const { got, handler } = collect();
          const r = await read(bus, { topic, from: 'latest', handler });
          await bus.publish(topic, seq(8, 4, 100));
          await until('new messages', () => got.length >= 8);
          await settle();
          await r.stop();
          expect(values(got).sort()).toEqual(
            seq(8, 4, 100)
              .map((m) => m.value)
              .sort(),
          );
        });
      });

      it('a failed batch comes again; a returned prefix is where reading goes on', async () => {
        await withBus(1, async (bus, topic, storage) => {
          const groupsBefore = new Set(await storage.groups());
          await bus.publish(topic, seq(20, 2));
          const firsts: bigint[] = [];
          const finished: bigint[] = [];
          let failed = false;
          const r = await read(bus, {
            topic,
            from: 'earliest',
            handler: async (b) => {
              firsts.push(b.messages[0].offset);
              if (!failed) {
                failed = true;
                throw new Error('not now');
              }
              const n = Math.min(6, b.messages.length);
              finished.push(...b.messages.slice(0, n).map((m) => m.offset));
              return n;
            },
          });
          await until('all finished', () => finished.length >= 20);
          await r.stop();
          expect(firsts.slice(0, 3)).toEqual([0n, 0n, 6n]);
          expect(finished).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)));
          expect((await storage.groups()).filter((g) => !groupsBefore.has(g))).toEqual([]);
        });
      });

      it('leaves committed offsets of groups alone, and a group reads its own way after it', async () => {
        await withBus(2, async (bus, topic) => {
          const group = unique('g');
          await bus.publish(topic, seq(40, 4));
          const { got, handler } = collect();
          const r = await read(bus, { topic, from: 'earliest', handler });
          await until('read', () => got.length >= 40);
          await r.stop();
          expect(behind(await bus.lag(group, topic))).toBe(40);
          const sub = collect();
          await subscribe(bus, { groupId: group, topics: [topic], handler: sub.handler });
          await until('the group', () => sub.got.length >= 40);
          expect(sub.got.length).toBe(40);
        });
      });
    });
  });
}
