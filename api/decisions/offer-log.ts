import type { Bus } from '../../core/bus/types.ts';
import type { Logger } from '../../core/log.ts';
import type { Metrics } from '../../core/metrics.ts';
import type { ServedFact } from './state.ts';

// Every offer is logged to the offers topic for analysis (fill rate, offers never delivered,
// audits) off the answer's path: offers wait in memory and are published in batches. When the bus
// cannot take a batch, it is dropped and counted (parley_decision_offers_unlogged_total): the
// answer has long gone out, and an offer is not a fact anything is billed on.

export type OfferLog = { add(f: ServedFact): void; flush(): Promise<void>; stop(): Promise<void> };

const MAX_WAITING = 50_000;

export function createOfferLog(deps: {
  bus: Bus;
  topic: string;
  metrics?: Metrics;
  logger: Logger;
  batchSize?: number;
  intervalMs?: number;
}): OfferLog {
  const batchSize = deps.batchSize ?? 2000;
  let waiting: ServedFact[] = [];
  let inFlight: Promise<void> = Promise.resolve();
  let failures = 0;
  /** Offers handed to the bus and not yet answered for: with `waiting`, bounded by MAX_WAITING. */
  let queued = 0;

  const publish = async (batch: ServedFact[]) => {
    try {
      await deps.bus.publish(
        deps.topic,
        batch.map((f) => ({
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
      );
      deps.metrics?.offersLogged.inc(batch.length);
    } catch (err) {
      deps.metrics?.offersUnlogged.inc(batch.length);
      if (failures++ % 100 === 0) deps.logger.warn({ err, offers: batch.length }, 'offers not logged');
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
    add(f) {
      if (waiting.length + queued >= MAX_WAITING) {
        deps.metrics?.offersUnlogged.inc();
        return;
      }
      waiting.push(f);
      if (waiting.length >= batchSize) void flush();
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
