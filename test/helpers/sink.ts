import { topicNames } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { createMetrics } from '../../core/metrics.ts';
import { createPipeline } from '../../processors/pipeline.ts';
import { runProcessors } from '../../processors/runner.ts';
import { createSink } from '../../processors/sink.ts';
import type { testApp } from './app.ts';

/** The sink alone, storing what reaches a test app's bus; resolves to its stop function. */
export async function startSink(t: Awaited<ReturnType<typeof testApp>>): Promise<() => Promise<void>> {
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  const topics = topicNames(t.config);
  const sink = createSink({
    pipeline: createPipeline({ store: t.store, bus: t.bus, logger, metrics, dlqTopic: topics.dlq }),
    store: t.store,
    bus: t.bus,
    logger,
    metrics,
    topic: topics.events,
    batchSize: 1000,
    batchWaitMs: 20,
  });
  const running = await runProcessors(t.feed, [sink], logger, metrics);
  return async () => {
    await running.stop();
  };
}
