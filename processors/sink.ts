import type { InMessage } from '../core/bus/types.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';
import type { Processor } from './types.ts';

// Writes events to ClickHouse in batches bounded by size and time. The insert is idempotent
// (events dedupe on event_id), so a replay after a crash re-inserts harmlessly.

export type EventRow = {
  event_id: string;
  type: string;
  occurred_at: string;
  business_id: string;
  user_id: string;
  thread_id: string;
  channel: string;
  props: string;
  ingested_at: string;
};

export function toRow(e: CanonicalEvent, ingestedAt: number): EventRow {
  return {
    event_id: e.event_id,
    type: e.type,
    occurred_at: e.occurred_at,
    business_id: e.business_id,
    user_id: e.user_id,
    thread_id: e.thread_id,
    channel: e.channel,
    props: JSON.stringify(e.props),
    ingested_at: new Date(ingestedAt).toISOString(),
  };
}

export function createSink(deps: {
  store: Store;
  logger: Logger;
  metrics: Metrics;
  topic: string;
  groupId?: string;
  batchSize: number;
  batchWaitMs: number;
}): Processor {
  const log = deps.logger.child({ component: 'sink' });
  const table = `${deps.store.database}.events`;
  return {
    name: 'sink',
    groupId: deps.groupId ?? 'parley-sink',
    topics: [deps.topic],
    maxBatchSize: deps.batchSize,
    maxWaitMs: deps.batchWaitMs,
    async handle(batch) {
      const rows = new Map<string, EventRow>();
      for (const m of batch.messages) {
        const row = decode(m, log);
        if (row) rows.set(row.event_id, row);
      }
      if (rows.size > 0) {
        await deps.store.client.insert({ table, values: [...rows.values()], format: 'JSONEachRow' });
      }
      deps.metrics.sinkRows.inc(rows.size);
      deps.metrics.processed.labels('sink').inc(batch.messages.length);
    },
  };
}

function decode(m: InMessage, log: Logger): EventRow | undefined {
  try {
    return toRow(JSON.parse(m.value.toString('utf8')) as CanonicalEvent, m.timestamp);
  } catch (err) {
    // Ingest only publishes validated events; anything else is dropped, loudly, not retried forever.
    log.error(
      { err, partition: m.partition, offset: m.offset.toString() },
      'dropping an undecodable message',
    );
    return undefined;
  }
}
