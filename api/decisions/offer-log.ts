import type { Bus } from '../../core/bus/types.ts';
import type { EventFeed } from '../../core/events/feed.ts';
import type { CanonicalEvent } from '../../core/events/schema.ts';
import type { Logger } from '../../core/log.ts';
import type { Metrics } from '../../core/metrics.ts';
import type { ServedFact } from './state.ts';

// What a decision records besides its answer, off the answer's path: every offer on the offers
// topic (for analysis: fill rate, offers never delivered, audits), and the would-be offers of
// campaigns with a holdout as sponsored.withheld on the events topic (for lift). Records wait in
// memory and are published in batches. When the bus cannot take a batch, it is dropped and
// counted (parley_decision_records_unlogged_total{log}): the answer has long gone out.

export type BatchLog<T> = { add(record: T): void; flush(): Promise<void>; stop(): Promise<void> };

const MAX_WAITING = 50_000;

export function createBatchLog<T>(deps: {
  /** Resolves once the bus holds the records durably. */
  publish: (records: T[]) => Promise<unknown>;
  /** Names the log in metrics and warnings. */
  name: 'offers' | 'withheld';
  metrics?: Metrics;
  logger: Logger;
  batchSize?: number;
  intervalMs?: number;
}): BatchLog<T> {
  const batchSize = deps.batchSize ?? 2000;
  const logged = deps.metrics?.decisionRecordsLogged.labels(deps.name);
  const unlogged = deps.metrics?.decisionRecordsUnlogged.labels(deps.name);
  let waiting: T[] = [];
  let inFlight: Promise<void> = Promise.resolve();
  let failures = 0;
  /** Records handed to the bus and not yet answered for: with `waiting`, bounded by MAX_WAITING. */
  let queued = 0;

  const publish = async (batch: T[]) => {
    try {
      await deps.publish(batch);
      logged?.inc(batch.length);
    } catch (err) {
      unlogged?.inc(batch.length);
      if (failures++ % 100 === 0)
        deps.logger.warn({ err, log: deps.name, records: batch.length }, 'decision records not logged');
    } finally {
      queued -= batch.length;
    }
  };
  const flush = () => {
    if (waiting.length === 0) return inFlight;
    const batch = waiting;
    waiting = [];
    queued += batch.length;
    inFlight = inFlight.then(() => publish(batch));
    return inFlight;
  };
  const timer = setInterval(() => void flush(), deps.intervalMs ?? 200);
  timer.unref();

  return {
    add(record) {
      if (waiting.length + queued >= MAX_WAITING) {
        unlogged?.inc();
        return;
      }
      waiting.push(record);
      if (waiting.length >= batchSize) void flush();
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}

export type OfferLog = BatchLog<ServedFact>;

/** Offers on the offers topic, keyed by user. */
export function createOfferLog(deps: {
  bus: Bus;
  topic: string;
  metrics?: Metrics;
  logger: Logger;
}): OfferLog {
  return createBatchLog<ServedFact>({
    ...deps,
    name: 'offers',
    publish: (facts) =>
      deps.bus.publish(
        deps.topic,
        facts.map((f) => ({
          key: f.userId,
          value: JSON.stringify({
            decision_id: f.decisionId,
            campaign_id: f.campaignId,
            business_id: f.businessId,
            user_id: f.userId,
            thread_id: f.threadId,
            channel: f.channel,
            price_micros: f.priceMicros,
            offered_at: new Date(f.atMs).toISOString(),
          }),
        })),
      ),
  });
}

/** Canonical events (sponsored.withheld) on the events topic, keyed by user as ingest keys them. */
export function createEventLog(deps: { feed: EventFeed; topic: string; metrics?: Metrics; logger: Logger }) {
  return createBatchLog<CanonicalEvent>({
    ...deps,
    name: 'withheld',
    publish: (events) => deps.feed.publish(deps.topic, events),
  });
}
