import type { Subscription } from '../core/bus/types.ts';
import type { EventFeed } from '../core/events/feed.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { type ErasedSet, withoutErased } from '../core/erasure/filter.ts';
import type { Processor } from './types.ts';

/** How long stopping waits for the current batches to finish and commit. */
export const STOP_DEADLINE_MS = 10_000;

/** Resolves true when p settles within ms, false when the time runs out first. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => {
    timer = setTimeout(r, ms, false);
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Hosts processors on the event feed: each is one consumer group. Stopping drains and commits. */
export async function runProcessors(
  feed: EventFeed,
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
      await feed.subscribe({
        groupId: p.groupId,
        topics: p.topics,
        maxBatchSize: p.maxBatchSize,
        maxWaitMs: p.maxWaitMs,
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
        feed.bus.lag(p.groupId, topic).then(
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
    /**
     * Lets the current batches finish and commit, within a deadline: a batch still running then
     * (a store that does not answer) is left uncommitted and comes again at the next start.
     * Resolves whether everything finished.
     */
    async stop(deadlineMs = STOP_DEADLINE_MS): Promise<boolean> {
      clearInterval(lagTimer);
      const drained = await settlesWithin(
        (async () => {
          await Promise.all(subs.map((s) => s.stop()));
          for (const p of processors) await p.close?.();
        })(),
        deadlineMs,
      );
      if (!drained)
        logger.warn(
          { deadlineMs },
          'processors did not finish within the shutdown deadline; what they committed is kept, the rest comes again at the next start',
        );
      return drained;
    },
  };
}
