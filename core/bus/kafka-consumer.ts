import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from '../log.ts';
import type { Batch, InMessage, SubscribeOptions, Subscription } from './types.ts';

// One consumer group member on kafkajs, with the bus's batch discipline: the handler sees one
// partition's messages in order; only the prefix it finished is resolved and committed; a failed
// batch is not resolved, its partition is paused and backs off, and the same messages come again.

export type KafkaConsumerOptions = {
  kafka: Kafka;
  logger: Logger;
  /** Partitions handled at once by this member. */
  concurrency: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
};

const KiB = 1024;
const MiB = 1024 * KiB;
const MAX_BACKOFF_MS = 5000;
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/** Kafka fetches by bytes, not messages: sized from the batch bound at a few hundred bytes a message. */
export function fetchLimits(maxBatchSize: number, maxWaitMs: number | undefined, concurrency: number) {
  const maxBytesPerPartition = clamp(maxBatchSize * 512, 64 * KiB, 8 * MiB);
  const maxBytes = clamp(maxBytesPerPartition * concurrency, maxBytesPerPartition, 50 * MiB);
  // With a fill wait, the broker holds the fetch until a good part of a batch is there (or the
  // wait is over). Without one it answers as soon as anything arrives (a long poll).
  const fill = maxWaitMs !== undefined && maxWaitMs > 0;
  return {
    maxBytesPerPartition,
    maxBytes,
    minBytes: fill ? clamp(maxBatchSize * 128, 1, MiB) : 1,
    maxWaitTimeInMs: fill ? maxWaitMs : 500,
  };
}

const headerString = (v: IHeaders[string]): string =>
  v === undefined ? '' : Array.isArray(v) ? v.map((x) => x.toString()).join(',') : v.toString();

export function toInMessage(topic: string, partition: number, m: KafkaMessage): InMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = headerString(v);
  return {
    topic,
    partition,
    offset: BigInt(m.offset),
    key: m.key ? m.key.toString('utf8') : '',
    value: m.value ?? Buffer.alloc(0),
    timestamp: Number(m.timestamp),
    headers,
  };
}

/**
 * A member of `s.groupId`. With `positions` (partition → next offset of the one topic read) it is
 * an ungrouped read instead: it seeks there, keeps them as it goes, and never commits, so the
 * group holds no offsets and the caller deletes it once stopped.
 */
export async function subscribeKafka(
  o: KafkaConsumerOptions,
  s: SubscribeOptions,
  positions?: Map<number, bigint>,
): Promise<Subscription> {
  const log = o.logger.child({ component: 'bus', kind: 'kafka', group: s.groupId });
  const maxBatch = s.maxBatchSize ?? 1000;
  const limits = fetchLimits(maxBatch, s.maxWaitMs, o.concurrency);
  const abort = new AbortController();
  const backoff = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  let consumer: Consumer | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let joined!: () => void;
  const ready = new Promise<void>((r) => {
    joined = r;
  });

  // Pauses one partition and resumes it later; kafkajs then fetches again from the first
  // unresolved offset, so the same messages come back.
  function pauseFor(p: EachBatchPayload, ms: number) {
    const resume = p.pause();
    const t = setTimeout(() => {
      timers.delete(t);
      if (!abort.signal.aborted) resume();
    }, ms);
    timers.add(t);
  }

  async function eachBatch(p: EachBatchPayload) {
    const { topic, partition } = p.batch;
    const key = `${topic}/${partition}`;
    let all = p.batch.messages;
    const floor = positions?.get(partition);
    if (floor !== undefined && all.length > 0 && BigInt(all[0].offset) < floor) {
      // Fetched before the seek took effect: what lies before the read's position is not its own.
      all = all.filter((m) => BigInt(m.offset) >= floor);
      if (all.length === 0) {
        p.resolveOffset((floor - 1n).toString());
        return;
      }
    }
    const ctx = {
      signal: abort.signal,
      // A failed heartbeat means a rebalance; the runner's own heartbeat after the batch rejoins.
      heartbeat: () => p.heartbeat().catch((err) => log.debug({ err }, 'heartbeat during a batch failed')),
    };
    for (let i = 0; i < all.length && !abort.signal.aborted; ) {
      if (!p.isRunning() || p.isStale()) return;
      const chunk = all.slice(i, i + maxBatch);
      const batch: Batch = { topic, partition, messages: chunk.map((m) => toInMessage(topic, partition, m)) };
      let done: number;
      try {
        const r = await s.handler(batch, ctx);
        done = typeof r === 'number' ? clamp(Math.floor(r), 0, chunk.length) : chunk.length;
      } catch (err) {
        if (abort.signal.aborted) return; // stopping: leave it for whoever owns the partition next
        const wait = backoff.get(key) ?? 100;
        backoff.set(key, Math.min(wait * 2, MAX_BACKOFF_MS));
        log.warn(
          { err, topic, partition, offset: chunk[0].offset, size: chunk.length, retryInMs: wait },
          'batch failed; pausing the partition and retrying',
        );
        pauseFor(p, wait);
        return;
      }
      backoff.delete(key);
      if (done === 0) {
        pauseFor(p, 100); // nothing finished: try again shortly, without spinning
        return;
      }
      const last = chunk[done - 1].offset;
      p.resolveOffset(last);
      if (positions) positions.set(partition, BigInt(last) + 1n);
      else
        await p.commitOffsetsIfNecessary({
          topics: [{ topic, partitions: [{ partition, offset: (BigInt(last) + 1n).toString() }] }],
        });
      await ctx.heartbeat();
      if (done < chunk.length) return; // the rest is fetched again
      i += chunk.length;
    }
  }

  // kafkajs restarts a member itself after retriable failures only; after any other crash the
  // member is rebuilt here, again and again until it runs or the subscription is stopped.
  function restartLater() {
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (abort.signal.aborted) return;
      start().catch((err) => {
        log.error({ err }, 'consumer restart failed; trying again');
        consumer?.disconnect().catch(() => {});
        restartLater();
      });
    }, MAX_BACKOFF_MS);
  }

  async function start() {
    const c = o.kafka.consumer({
      groupId: s.groupId,
      sessionTimeout: o.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: o.heartbeatIntervalMs ?? 1000,
      allowAutoTopicCreation: false,
      ...limits,
      // Retriable trouble (a broker outage) restarts the member inside kafkajs; others are
      // handled by the crash listener below.
      retry: { initialRetryTime: 200, maxRetryTime: 5000, retries: 10, restartOnFailure: async () => true },
    });
    consumer = c;
    // Ready after the first fetch that follows joining: by then the starting offsets are
    // resolved, so with start 'latest' a message published after `ready` is never skipped.
    let member = false;
    c.on(c.events.GROUP_JOIN, (e) => {
      log.info({ memberId: e.payload.memberId, assignment: e.payload.memberAssignment }, 'joined the group');
      member = true;
      s.onAssign?.(new Map(Object.entries(e.payload.memberAssignment)));
    });
    c.on(c.events.FETCH, () => {
      if (member) joined();
    });
    c.on(c.events.CRASH, (e) => {
      if (e.payload.restart || abort.signal.aborted) return;
      log.error({ err: e.payload.error }, 'consumer crashed; starting it again');
      restartLater();
    });
    await c.connect();
    await c.subscribe({ topics: s.topics, fromBeginning: s.start !== 'latest' });
    await c.run({
      eachBatch,
      eachBatchAutoResolve: false,
      autoCommit: false,
      partitionsConsumedConcurrently: o.concurrency,
    });
    // Seeks wait for the partition's next fetch; with autoCommit off they commit nothing.
    for (const [partition, offset] of positions ?? [])
      c.seek({ topic: s.topics[0], partition, offset: offset.toString() });
  }

  await start();
  return {
    ready,
    async stop() {
      if (abort.signal.aborted) return;
      abort.abort();
      clearTimeout(restartTimer);
      for (const t of timers) clearTimeout(t);
      // disconnect() lets the running batch finish (it commits what it finished), leaves the
      // group so the partitions move at once, and closes the connections.
      await consumer?.disconnect();
    },
  };
}
