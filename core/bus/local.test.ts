import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { createLocalBus } from './local.ts';
import type { InMessage } from './types.ts';

const logger = createLogger({ level: 'silent' });
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('local bus', () => {
  it('delivers in order per key, commits after the handler, and replays from the committed offset', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-bus-'));
    const bus = await createLocalBus({ dir, logger });
    await bus.ensureTopics([{ name: 't', partitions: 3 }]);
    await bus.publish(
      't',
      Array.from({ length: 30 }, (_, i) => ({ key: `u${i % 4}`, value: String(i) })),
    );
    const seen: InMessage[] = [];
    const sub = await bus.subscribe({
      groupId: 'g',
      topics: ['t'],
      handler: async (b) => void seen.push(...b.messages),
      maxBatchSize: 7,
    });
    await until(() => seen.length === 30);
    for (const k of ['u0', 'u1', 'u2', 'u3']) {
      const vals = seen.filter((m) => m.key === k).map((m) => Number(m.value));
      expect(vals).toEqual([...vals].sort((a, b) => a - b));
    }
    await sub.stop();
    const lag = await bus.lag('g', 't');
    expect(lag.every((p) => p.committed === p.end)).toBe(true);
    await bus.close();

    // After a restart, only what came after the commit is delivered.
    const bus2 = await createLocalBus({ dir, logger });
    await bus2.publish('t', [{ key: 'u9', value: 'late' }]);
    const again: string[] = [];
    const sub2 = await bus2.subscribe({
      groupId: 'g',
      topics: ['t'],
      handler: async (b) => void again.push(...b.messages.map((m) => m.value.toString())),
    });
    await until(() => again.length === 1);
    expect(again).toEqual(['late']);
    await sub2.stop();
    await bus2.close();
  });

  it('redelivers a batch whose handler failed, and commits only a returned prefix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-bus-'));
    const bus = await createLocalBus({ dir, logger });
    await bus.ensureTopics([{ name: 't' }]);
    await bus.publish(
      't',
      ['a', 'b', 'c'].map((v) => ({ key: 'k', value: v })),
    );
    const calls: string[][] = [];
    let fail = true;
    const sub = await bus.subscribe({
      groupId: 'g',
      topics: ['t'],
      handler: async (b) => {
        calls.push(b.messages.map((m) => m.value.toString()));
        if (fail) {
          fail = false;
          throw new Error('store down');
        }
        return calls.length === 2 ? 1 : undefined; // the second call finishes only 'a'
      },
    });
    await until(() => calls.length >= 3);
    await sub.stop();
    expect(calls.slice(0, 3)).toEqual([
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
      ['b', 'c'],
    ]);
    await bus.close();
  });

  /** A bus with topic t and one subscriber recording the size of each batch it is handed. */
  async function batchSizes(limits: { maxBatchSize: number; maxWaitMs: number; maxIdleMs?: number }) {
    const dir = await mkdtemp(join(tmpdir(), 'parley-bus-'));
    const bus = await createLocalBus({ dir, logger });
    await bus.ensureTopics([{ name: 't' }]);
    const sizes: number[] = [];
    const sub = await bus.subscribe({
      groupId: 'g',
      topics: ['t'],
      ...limits,
      handler: async (b) => void sizes.push(b.messages.length),
    });
    return { bus, sub, sizes };
  }

  it('holds batches back until they fill or the wait passes', async () => {
    const { bus, sub, sizes } = await batchSizes({ maxBatchSize: 100, maxWaitMs: 300 });
    for (let i = 0; i < 5; i++) {
      await bus.publish(
        't',
        Array.from({ length: 10 }, () => ({ key: 'k', value: 'x' })),
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => sizes.reduce((a, b) => a + b, 0) === 50);
    expect(sizes.length).toBeLessThanOrEqual(2);
    await sub.stop();
    await bus.close();
  });

  it('hands over a batch once nothing new arrives for maxIdleMs, long before maxWaitMs', async () => {
    const { bus, sub, sizes } = await batchSizes({ maxBatchSize: 1000, maxWaitMs: 5000, maxIdleMs: 100 });
    const t0 = Date.now();
    // Arrivals closer together than maxIdleMs keep filling the same batch.
    for (let i = 0; i < 5; i++) {
      await bus.publish('t', [{ key: 'k', value: 'x' }]);
      await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => sizes.reduce((a, b) => a + b, 0) === 5);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(sizes.length).toBeLessThanOrEqual(2);
    await sub.stop();
    await bus.close();
  });

  it('refuses a second member of the same group in one process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-bus-'));
    const bus = await createLocalBus({ dir, logger });
    await bus.ensureTopics([{ name: 't' }]);
    const sub = await bus.subscribe({ groupId: 'g', topics: ['t'], handler: async () => {} });
    await expect(bus.subscribe({ groupId: 'g', topics: ['t'], handler: async () => {} })).rejects.toThrow(
      /already consumes/,
    );
    await sub.stop();
    await bus.close();
  });
});
