import type { InMessage } from '../core/bus/types.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { type Store, isClickHouseError } from '../core/store/client.ts';
import type { Processor } from './types.ts';

// Writes events to ClickHouse in batches bounded by size and time. The insert is idempotent
// (events dedupe on event_id), so a replay after a crash re-inserts harmlessly.
//
// Bus values are canonical events as JSON, already validated by ingest, so they are handed to
// ClickHouse as JSONEachRow without being parsed here: `props` (an object) lands in its String
// column as JSON text. If ClickHouse refuses a batch's data, the batch is split until the bad
// messages are isolated, and only they are dropped (loudly) instead of blocking the partition.

export type EventRow = {
  event_id: string;
  type: string;
  occurred_at: string;
  business_id: string;
  user_id: string;
  thread_id: string;
  channel: string;
  props: string;
};

export function toRow(e: CanonicalEvent): EventRow {
  return {
    event_id: e.event_id,
    type: e.type,
    occurred_at: e.occurred_at,
    business_id: e.business_id,
    user_id: e.user_id,
    thread_id: e.thread_id,
    channel: e.channel,
    props: JSON.stringify(e.props),
  };
}

const NL = Buffer.from('\n');
/** A batch still filling is stored once nothing new has reached its partition for this long. */
const IDLE_MS = 50;
/** How long the first batch of an insert waits for other partitions' batches to join it. */
const GATHER_MS = 5;
const RAW_SETTINGS = {
  input_format_json_read_objects_as_strings: 1,
  input_format_skip_unknown_fields: 1,
  date_time_input_format: 'best_effort',
} as const;

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

  async function insertRaw(messages: InMessage[]) {
    const parts: Buffer[] = [];
    for (const m of messages) parts.push(m.value, NL);
    await deps.store.insertJsonLines(table, Buffer.concat(parts), RAW_SETTINGS);
  }

  // Halves the batch until the messages ClickHouse refuses are isolated; returns rows stored.
  async function insertIsolating(messages: InMessage[]): Promise<number> {
    try {
      await insertRaw(messages);
      return messages.length;
    } catch (err) {
      if (!isClickHouseError(err)) throw err;
      if (messages.length === 1) {
        const m = messages[0];
        log.error(
          { err: err.message, partition: m.partition, offset: m.offset.toString() },
          'dropping a message ClickHouse cannot read',
        );
        return 0;
      }
      const mid = messages.length >> 1;
      return (await insertIsolating(messages.slice(0, mid))) + (await insertIsolating(messages.slice(mid)));
    }
  }

  // Batches of several partitions share one insert: ClickHouse spends much less per row on one
  // insert of 10,000 rows than on four of 2,500 (each insert makes a part, and parts are merged).
  // A batch that arrives while an insert is running joins the next one; the first waits briefly
  // for the others. Each batch still resolves only once its own rows are stored.
  type Waiting = { messages: InMessage[]; resolve: (rows: number) => void; reject: (err: unknown) => void };
  let queue: Waiting[] = [];
  let draining = false;

  async function drain() {
    draining = true;
    try {
      await new Promise((r) => setTimeout(r, GATHER_MS));
      while (queue.length > 0) {
        const group = queue;
        queue = [];
        try {
          await insertRaw(group.length === 1 ? group[0].messages : group.flatMap((g) => g.messages));
          for (const g of group) g.resolve(g.messages.length);
        } catch (err) {
          if (!isClickHouseError(err)) {
            for (const g of group) g.reject(err); // an outage: every batch comes again
            continue;
          }
          // A data error (not an outage): find and drop the bad messages, keep the rest.
          log.warn(
            { err: err.message, code: err.code },
            'ClickHouse refused a batch; isolating the bad messages',
          );
          for (const g of group) await insertIsolating(g.messages).then(g.resolve, g.reject);
        }
      }
    } finally {
      draining = false;
    }
  }

  function store(messages: InMessage[]): Promise<number> {
    return new Promise((resolve, reject) => {
      queue.push({ messages, resolve, reject });
      if (!draining) void drain();
    });
  }

  return {
    name: 'sink',
    groupId: deps.groupId ?? 'parley-sink',
    topics: [deps.topic],
    maxBatchSize: deps.batchSize,
    maxWaitMs: deps.batchWaitMs,
    // The end of a burst is stored without waiting out the whole batch wait.
    maxIdleMs: IDLE_MS,
    async handle(batch) {
      const rows = await store(batch.messages);
      deps.metrics.sinkRows.inc(rows);
      deps.metrics.processed.labels('sink').inc(batch.messages.length);
    },
  };
}
