import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../core/bus/local.ts';
import { createLogger } from '../core/log.ts';
import { EventFeed } from '../core/events/feed.ts';
import { createMetrics } from '../core/metrics.ts';
import { createStore, type Store } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { createPipeline } from '../processors/pipeline.ts';
import { runProcessors, STOP_DEADLINE_MS, settlesWithin } from '../processors/runner.ts';
import { createSink } from '../processors/sink.ts';
import { waitFor } from './helpers/process.ts';

// Stopping has a deadline: with a store that no longer answers, the processors give up on the
// batch in flight (left uncommitted, so it comes again) instead of hanging in "draining".

const event = (id: string) =>
  JSON.stringify({
    event_id: id,
    type: 'message.received',
    occurred_at: new Date().toISOString(),
    business_id: 'stuck',
    user_id: 'u',
    thread_id: 't_u',
    channel: 'whatsapp',
    props: {},
  });

describe('shutdown', () => {
  let store: Store;
  let storeDir: string;
  beforeAll(async () => {
    storeDir = await mkdtemp(join(tmpdir(), 'parley-stuck-'));
    store = await createStore({ dataDir: storeDir, clickhouse: { database: 'parley' } });
    await migrate(store, createLogger({ level: 'silent' }));
  });
  afterAll(async () => {
    await store.close();
    await rm(storeDir, { recursive: true, force: true });
  });

  it('returns within its deadline when the store does not answer, keeping only what was committed', async () => {
    const logger = createLogger({ level: 'silent' });
    const metrics = createMetrics();
    const bus = await createLocalBus({ dir: join(storeDir, 'log'), logger });
    await bus.ensureTopics([{ name: 'ev', partitions: 1 }, { name: 'dlq' }]);
    let stuck = false;
    let pending = 0;
    // The store stops answering inserts (a hung server): they never settle.
    const hanging: Store = {
      ...store,
      insertJsonLines: (table, data, settings) => {
        if (!stuck) return store.insertJsonLines(table, data, settings);
        pending++;
        return new Promise(() => {});
      },
    };
    const pipeline = createPipeline({ store: hanging, bus, logger, metrics, dlqTopic: 'dlq' });
    const sink = createSink({
      store: hanging,
      bus,
      logger,
      metrics,
      topic: 'ev',
      batchSize: 100,
      batchWaitMs: 10,
      pipeline,
    });
    const running = await runProcessors(new EventFeed(bus), [sink], logger, metrics);
    const publish = (id: string) => bus.publish('ev', [{ key: 'u', value: event(id) }]);
    await publish('before');
    await waitFor('stored', async () => (await bus.lag('parley-sink', 'ev'))[0].committed === 1n);
    stuck = true;
    await publish('during');
    await waitFor('an insert hanging', async () => pending > 0);

    const started = Date.now();
    expect(await running.stop()).toBe(false);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(STOP_DEADLINE_MS - 100);
    expect(took).toBeLessThan(STOP_DEADLINE_MS + 2000);
    // The stuck batch was not committed: it comes again at the next start.
    expect((await bus.lag('parley-sink', 'ev'))[0].committed).toBe(1n);
    expect(await settlesWithin(bus.close(), 1000)).toBe(false); // the hung batch still holds it
  }, 30_000);
});
