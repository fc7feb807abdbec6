import type { Bus, Subscription } from '../core/bus/types.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { type ErasedSet, withoutErased } from '../core/erasure/filter.ts';
import type { Processor } from './types.ts';

/** Hosts processors on the bus: each is one consumer group. Stopping drains and commits. */
export async function runProcessors(
  bus: Bus,
  processors: Processor[],
  logger: Logger,
  metrics: Metrics,
  erased?: ErasedSet,
) {
  const subs: Subscription[] = [];
  for (const p of processors) {
    await p.init?.();
    const log = logger.child({ component: 'processor', processor: p.name });
    subs.push(
      await bus.subscribe({
        groupId: p.groupId,
        topics: p.topics,
        maxBatchSize: p.maxBatchSize,
        maxWaitMs: p.maxWaitMs,
        maxIdleMs: p.maxIdleMs,
        onAssign: p.onAssign,
        handler: async (batch, ctx) => {
          try {
            // Erased people's events never reach a processor, whenever the bus replays them.
            return await (erased ? withoutErased(erased, p.handle)(batch, ctx) : p.handle(batch, ctx));
          } catch (err) {
            metrics.processorErrors.labels(p.name).inc();
            log.warn(
              { err, topic: batch.topic, partition: batch.partition, size: batch.messages.length },
              'batch failed; it will be retried',
            );
            throw err;
          }
        },
      }),
    );
    log.info({ group: p.groupId, topics: p.topics }, 'processor started');
  }
  // Lag per group and topic, for /metrics and for operators watching a catch-up.
  const lagTimer = setInterval(() => {
    for (const p of processors) {
      for (const topic of p.topics) {
        bus.lag(p.groupId, topic).then(
          (parts) =>
            metrics.lag
              .labels(p.groupId, topic)
              .set(Number(parts.reduce((a, x) => a + (x.end - x.committed), 0n))),
          () => {},
        );
      }
    }
  }, 1000);
  lagTimer.unref();
  return {
    subscriptions: subs,
    async stop() {
      clearInterval(lagTimer);
      await Promise.all(subs.map((s) => s.stop()));
      for (const p of processors) await p.close?.();
    },
  };
}
