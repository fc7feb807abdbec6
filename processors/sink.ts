import { messageInput } from '../core/bus/dead-letters.ts';
import type { Bus } from '../core/bus/types.ts';
import { committedOffsets, type Offsets } from '../core/bus/wait.ts';
import type { EventMessage } from '../core/events/message.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { type Store, isClickHouseError } from '../core/store/client.ts';
import { insertIsolating } from '../core/store/isolate.ts';
import type { Pipeline } from './pipeline.ts';
import type { Processor } from './types.ts';

// Writes the first copy of each event to ClickHouse in batches bounded by size and time, and
// records it in the event_ids registry (core/events/dedup.ts) once stored; later copies are
// skipped. A replay after a crash re-inserts the same first copies, which collapse on event_id.
//
// Bus values are canonical events as JSON, already validated by ingest, so they are handed to
// ClickHouse as JSONEachRow without being parsed here: `props` (an object) lands in its String
// column as JSON text. If ClickHouse refuses a batch's data, the batch is split until the bad
// messages are isolated; they go to the dead-letter topic instead of blocking the partition.

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
/** How long the first batch of an insert waits for other partitions' batches to join it. */
const GATHER_MS = 5;
const RAW_SETTINGS = {
  input_format_json_read_objects_as_strings: 1,
  input_format_skip_unknown_fields: 1,
  date_time_input_format: 'best_effort',
  // A batch holds first copies only, so there is nothing for the engine to collapse on insert.
  optimize_on_insert: 0,
} as const;

export type Sink = Processor & {
  /**
   * How far the events topic is stored, per partition: every event before the offset is in the
   * store (the sink commits a batch only once it is stored). Processors that rebuild state from
   * the store wait on it.
   */
  storedOffsets(): Promise<Offsets>;
};

export function createSink(deps: {
  store: Store;
  bus: Bus;
  logger: Logger;
  metrics: Metrics;
  topic: string;
  groupId?: string;
  batchSize: number;
  batchWaitMs: number;
  pipeline: Pipeline;
}): Sink {
  const log = deps.logger.child({ component: 'sink' });
  const groupId = deps.groupId ?? 'parley-sink';
  const dedup = deps.pipeline.dedup('sink');
  const table = `${deps.store.database}.events`;

  async function insertRaw(messages: readonly EventMessage[]) {
    const parts: Buffer[] = [];
    for (const m of messages) parts.push(m.value, NL);
    await deps.store.insertJsonLines(table, Buffer.concat(parts), RAW_SETTINGS);
  }

  // Isolates the messages ClickHouse refuses, dead-letters them, registers the rest; returns rows stored.
  async function storeIsolating(messages: EventMessage[]): Promise<number> {
    const refused = await insertIsolating(messages, insertRaw);
    await deps.pipeline.deadLetters(
      'sink',
      refused.map(({ item, error }) => ({
        error,
        input: messageInput(item),
        partition: item.partition,
        offset: item.offset,
      })),
    );
    const bad = new Set(refused.map((r) => r.item));
    const stored = messages.filter((m) => !bad.has(m));
    await dedup.register(stored);
    return stored.length;
  }

  // Batches of several partitions share one insert: ClickHouse spends much less per row on one
  // insert of 10,000 rows than on four of 2,500 (each insert makes a part, and parts are merged).
  // A batch that arrives while an insert is running joins the next one; the first waits briefly
  // for the others. Each batch still resolves only once its own rows are stored.
  type Waiting = {
    messages: EventMessage[];
    resolve: (rows: number) => void;
    reject: (err: unknown) => void;
  };
  let queue: Waiting[] = [];
  let draining = false;

  async function drain() {
    draining = true;
    try {
      await new Promise((r) => setTimeout(r, GATHER_MS));
      while (queue.length > 0) {
        const group = queue;
        queue = [];
        const all = group.length === 1 ? group[0].messages : group.flatMap((g) => g.messages);
        // Stored and registered at once (the engine runs both inserts side by side): a batch
        // resolves only once both are done, so nothing is committed unregistered.
        const [stored, registered] = await Promise.allSettled([insertRaw(all), dedup.register(all)]);
        if (stored.status === 'fulfilled' && registered.status === 'fulfilled') {
          for (const g of group) g.resolve(g.messages.length);
        } else {
          const err =
            stored.status === 'rejected' ? stored.reason : (registered as PromiseRejectedResult).reason;
          if (!isClickHouseError(err)) {
            for (const g of group) g.reject(err); // an outage: every batch comes again
            continue;
          }
          // A data error (not an outage): find the bad messages, store the rest.
          log.warn(
            { err: err.message, code: err.code },
            'ClickHouse refused a batch; isolating the bad messages',
          );
          for (const g of group) await storeIsolating(g.messages).then(g.resolve, g.reject);
        }
      }
    } finally {
      draining = false;
    }
  }

  function store(messages: EventMessage[]): Promise<number> {
    if (!messages.length) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      queue.push({ messages, resolve, reject });
      if (!draining) void drain();
    });
  }

  return {
    name: 'sink',
    groupId,
    topics: [deps.topic],
    maxBatchSize: deps.batchSize,
    maxWaitMs: deps.batchWaitMs,
    // Copies of events stored before this start are known from the registry.
    init: () => deps.pipeline.index.refresh(),
    storedOffsets: () => committedOffsets(deps.bus, groupId, deps.topic),
    async handle(batch) {
      const rows = await store(await dedup.firstCopies(batch.messages));
      deps.metrics.sinkRows.inc(rows);
      deps.metrics.processed.labels('sink').inc(batch.messages.length);
    },
  };
}
