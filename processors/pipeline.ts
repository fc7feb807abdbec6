import { createDeadLetters, type DeadLetters } from '../core/bus/dead-letters.ts';
import type { Bus } from '../core/bus/types.ts';
import { createDedupIndex, type Dedup, type DedupIndex } from '../core/events/dedup.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';

/** What every processor of the events topic shares: first-copy checks and the dead-letter topic. */
export type Pipeline = {
  index: DedupIndex;
  deadLetters: DeadLetters;
  /** The first-copy check of one processor, counting the copies it skips under its name. */
  dedup(stage: string): Dedup;
};

export function createPipeline(deps: {
  store: Store;
  bus: Bus;
  logger: Logger;
  metrics: Metrics;
  dlqTopic: string;
}): Pipeline {
  const index = createDedupIndex({ store: deps.store, logger: deps.logger });
  return {
    index,
    deadLetters: createDeadLetters({
      bus: deps.bus,
      topic: deps.dlqTopic,
      logger: deps.logger,
      onSent: (stage, n) => deps.metrics.deadLetters.labels(stage).inc(n),
    }),
    dedup: (stage) => index.forStage((n) => deps.metrics.duplicates.labels(stage).inc(n)),
  };
}
