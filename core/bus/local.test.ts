import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { busContract } from './contract.ts';
import { createLocalBus } from './local.ts';

const logger = createLogger({ level: 'silent' });
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

busContract('embedded log', {
  async storage() {
    const dir = await mkdtemp(join(tmpdir(), 'parley-bus-'));
    return {
      open: () => createLocalBus({ dir, logger }),
      groups: async () =>
        (await readdir(join(dir, '_groups')))
          .filter((f) => f.endsWith('.json'))
          .map((f) => decodeURIComponent(f.slice(0, -'.json'.length))),
    };
  },
});

// What only the embedded log does; what every bus does is in the contract above.
describe('local bus', () => {
  /** A bus with topic t and one subscriber recording the size of each batch it is handed. */
  async function batchSizes(batchIdleMs: number, limits: { maxBatchSize: number; maxWaitMs: number }) {
    const dir = await mkdtemp(join(tmpdir(), 'parley-bus-'));
    const bus = await createLocalBus({ dir, logger, batchIdleMs });
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
    const { bus, sub, sizes } = await batchSizes(1000, { maxBatchSize: 100, maxWaitMs: 300 });
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

  it('hands over a batch once nothing new arrives for batchIdleMs, long before maxWaitMs', async () => {
    const { bus, sub, sizes } = await batchSizes(100, { maxBatchSize: 1000, maxWaitMs: 5000 });
    const t0 = Date.now();
    // Arrivals closer together than batchIdleMs keep filling the same batch.
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
