import { randomBytes } from 'node:crypto';
import {
  type Admin,
  type ICustomPartitioner,
  Kafka,
  type Message,
  Partitioners,
  type Producer,
} from 'kafkajs';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { subscribeKafka } from './kafka-consumer.ts';
import { kafkaLevel, kafkaLogCreator } from './kafka-log.ts';
import type {
  Bus,
  OutMessage,
  Position,
  ReadFrom,
  ReadOptions,
  Reader,
  Subscription,
  TopicSpec,
} from './types.ts';

// The bus on Apache Kafka. Publishing goes through one idempotent producer (acks from all
// in-sync replicas, one request in flight, so per-key order holds across retries). Concurrent
// publishes are coalesced into one produce request at a time; each publish is bounded by a
// timeout so ingest answers a retriable 503 promptly during an outage instead of hanging.

export type KafkaBusOptions = {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** Partitions of topics this bus creates (unless a topic names its own). */
  partitions: number;
  replication: number;
  /** Upper bound on one publish, queueing included. */
  publishTimeoutMs?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
};

// Below the broker's default message.max.bytes (1 MiB per partition batch): a request never
// carries more than this in total, so no partition's batch can exceed it.
const MAX_REQUEST_BYTES = 900 * 1024;
const PRODUCER_RETRY = { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 };

type Entry = {
  topic: string;
  messages: Message[];
  bytes: number;
  deadline: number;
  settled: boolean;
  timer?: NodeJS.Timeout;
  /** Where each message was written, once the broker has them. */
  written?: Position[];
  resolve(written: Position[]): void;
  reject(err: unknown): void;
};

/**
 * The producer's default partitioner (murmur2 of the key), remembering the partition it chose for
 * each message: with the base offset the broker answers per partition, that says where each
 * message of a produce request was written.
 */
function recordingPartitioner(chosen: WeakMap<Message, number>): ICustomPartitioner {
  return () => {
    const pick = Partitioners.DefaultPartitioner();
    return (args) => {
      const p = pick(args);
      chosen.set(args.message, p);
      return p;
    };
  };
}

const messageBytes = (m: Message) =>
  (m.value as Buffer).length +
  String(m.key ?? '').length +
  64 +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + String(v).length, 0);

const clamp = (x: bigint, lo: bigint, hi: bigint) => (x < lo ? lo : x > hi ? hi : x);

/** Splits messages into runs that fit one request, keeping their order. */
export function chunkMessages(
  messages: Message[],
  maxBytes = MAX_REQUEST_BYTES,
): { messages: Message[]; bytes: number }[] {
  const out: { messages: Message[]; bytes: number }[] = [];
  let cur: Message[] = [];
  let bytes = 0;
  for (const m of messages) {
    const b = messageBytes(m);
    if (cur.length > 0 && bytes + b > maxBytes) {
      out.push({ messages: cur, bytes });
      cur = [];
      bytes = 0;
    }
    cur.push(m);
    bytes += b;
  }
  if (cur.length > 0) out.push({ messages: cur, bytes });
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function createKafkaBus(opts: KafkaBusOptions): Promise<Bus> {
  const log = opts.logger.child({ component: 'bus', kind: 'kafka' });
  const publishTimeoutMs = opts.publishTimeoutMs ?? 5000;
  const client = {
    brokers: opts.brokers,
    clientId: opts.clientId,
    logLevel: kafkaLevel(opts.logger.level),
    logCreator: kafkaLogCreator(opts.logger),
    connectionTimeout: 3000,
    requestTimeout: 10_000,
  };
  const kafka = new Kafka({ ...client, retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 8 } });
  // The producer's client retries briefly (under a second of backoff, connecting included):
  // enough to ride out a leader move, short enough that a refused connection becomes a 503 at
  // once instead of at the timeout. The caller retries after a 503.
  const producerKafka = new Kafka({ ...client, retry: PRODUCER_RETRY });
  const subs = new Set<Subscription | Reader>();
  let closed = false;

  // The producer is replaced after any failed send: kafkajs can leave an idempotent producer
  // with stale sequence state or dead connections after an outage, and a fresh one (new
  // producer id) always starts clean once the broker is back.
  let current: { producer: Producer; connected: Promise<void> } | undefined;
  const chosen = new WeakMap<Message, number>();
  function producer() {
    if (!current) {
      const p = producerKafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: recordingPartitioner(chosen),
        retry: PRODUCER_RETRY,
      });
      const connected = p.connect();
      connected.catch(() => {});
      current = { producer: p, connected };
    }
    return current;
  }
  function discard(p: NonNullable<typeof current>) {
    if (current !== p) return;
    current = undefined;
    p.producer.disconnect().catch((err) => log.debug({ err }, 'disconnecting a failed producer'));
  }

  async function send(entries: Entry[]) {
    const byTopic = new Map<string, Message[]>();
    for (const e of entries) {
      const list = byTopic.get(e.topic);
      if (list) list.push(...e.messages);
      else byTopic.set(e.topic, [...e.messages]);
    }
    const p = producer();
    const timeout = Math.max(1, Math.max(...entries.map((e) => e.deadline)) - Date.now());
    let meta: Awaited<ReturnType<Producer['sendBatch']>>;
    try {
      meta = await withTimeout(
        (async () => {
          await p.connected;
          return p.producer.sendBatch({
            acks: -1,
            timeout,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
          });
        })(),
        timeout,
        'publishing to Kafka',
      );
    } catch (err) {
      discard(p);
      throw err;
    }
    // A partition's messages of one request are written in request order from its base offset.
    const next = new Map(meta.map((r) => [`${r.topicName}/${r.partition}`, BigInt(r.baseOffset ?? -1)]));
    for (const e of entries) {
      e.written = e.messages.map((m) => {
        const partition = chosen.get(m) ?? -1;
        const k = `${e.topic}/${partition}`;
        const offset = next.get(k);
        if (offset === undefined || offset < 0n) throw new Error(`Kafka answered no offset for ${k}`);
        next.set(k, offset + 1n);
        return { partition, offset };
      });
    }
  }

  const queue: Entry[] = [];
  let pumping = false;
  function settle(e: Entry, err?: unknown) {
    if (e.settled) return;
    e.settled = true;
    clearTimeout(e.timer);
    if (err === undefined) e.resolve(e.written ?? []);
    else e.reject(new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err }));
  }
  async function pump() {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0) {
        const take: Entry[] = [];
        let bytes = 0;
        while (queue.length > 0 && (take.length === 0 || bytes + queue[0].bytes <= MAX_REQUEST_BYTES)) {
          const e = queue.shift() as Entry;
          take.push(e);
          bytes += e.bytes;
        }
        try {
          await send(take);
          for (const e of take) settle(e);
        } catch (err) {
          log.warn(
            { err, messages: take.reduce((n, e) => n + e.messages.length, 0) },
            'Kafka did not acknowledge a publish',
          );
          for (const e of take) settle(e, err);
        }
      }
    } finally {
      pumping = false;
    }
  }
  function enqueue(topic: string, chunk: { messages: Message[]; bytes: number }, deadline: number) {
    return new Promise<Position[]>((resolve, reject) => {
      const e: Entry = { topic, ...chunk, deadline, settled: false, resolve, reject };
      // Still queued at the deadline: it is never sent, and the caller hears so now.
      e.timer = setTimeout(() => {
        const i = queue.indexOf(e);
        if (i >= 0) queue.splice(i, 1);
        settle(e, new Error(`publishing to Kafka timed out after ${publishTimeoutMs} ms`));
      }, deadline - Date.now());
      queue.push(e);
      void pump();
    });
  }

  let admin: Promise<Admin> | undefined;
  async function withAdmin<T>(f: (a: Admin) => Promise<T>): Promise<T> {
    admin ??= (async () => {
      const a = kafka.admin({ retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5 } });
      await a.connect();
      return a;
    })();
    const mine = admin;
    try {
      return await f(await mine);
    } catch (err) {
      if (admin === mine) admin = undefined;
      mine.then((a) => a.disconnect()).catch(() => {});
      throw new ParleyError(
        'PARLEY_ERR_BUS_UNAVAILABLE',
        `Kafka admin request failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** Where an ungrouped read starts, per partition. */
  async function startOffsets(topic: string, from: ReadFrom): Promise<Map<number, bigint>> {
    return withAdmin(async (a) => {
      const offs = await a.fetchTopicOffsets(topic);
      const at =
        typeof from === 'object' && 'timestamp' in from
          ? new Map(
              (await a.fetchTopicOffsetsByTimestamp(topic, from.timestamp)).map((o) => [
                o.partition,
                BigInt(o.offset),
              ]),
            )
          : undefined;
      return new Map(
        offs.map((o) => {
          const low = BigInt(o.low);
          const p = o.partition;
          if (from === 'earliest') return [p, low];
          if (from === 'latest') return [p, BigInt(o.high)];
          const chosen = 'offsets' in from ? from.offsets.get(p) : at?.get(p);
          return [p, clamp(chosen ?? low, low, BigInt(o.high))];
        }),
      );
    });
  }

  return {
    async ensureTopics(specs: TopicSpec[]) {
      await withAdmin(async (a) => {
        const existing = new Set(await a.listTopics());
        const missing = specs.filter((s) => !existing.has(s.name));
        if (missing.length === 0) return;
        await a.createTopics({
          waitForLeaders: true,
          topics: missing.map((s) => ({
            topic: s.name,
            numPartitions: s.partitions ?? opts.partitions,
            replicationFactor: opts.replication,
            configEntries: [
              // Timestamps say when the bus accepted a message, as the Bus contract has it.
              { name: 'message.timestamp.type', value: 'LogAppendTime' },
              ...(s.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
              ...(s.retentionMs ? [{ name: 'retention.ms', value: String(s.retentionMs) }] : []),
            ],
          })),
        });
        log.info({ topics: missing.map((s) => s.name) }, 'created topics');
      });
    },

    async publish(topic: string, messages: OutMessage[]) {
      if (closed) throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', 'The bus is closed');
      if (messages.length === 0) return [];
      const deadline = Date.now() + publishTimeoutMs;
      const kms: Message[] = messages.map((m) => ({
        key: m.key,
        value: typeof m.value === 'string' ? Buffer.from(m.value) : m.value,
        headers: m.headers,
      }));
      // Chunks go one after another, so one key's messages keep their order.
      const written: Position[] = [];
      for (const chunk of chunkMessages(kms)) written.push(...(await enqueue(topic, chunk, deadline)));
      return written;
    },

    async subscribe(s) {
      const sub = await subscribeKafka(
        {
          kafka,
          logger: opts.logger,
          concurrency: opts.partitions,
          sessionTimeoutMs: opts.sessionTimeoutMs,
          heartbeatIntervalMs: opts.heartbeatIntervalMs,
        },
        s,
      );
      const tracked: Subscription = {
        ready: sub.ready,
        async stop() {
          subs.delete(tracked);
          await sub.stop();
        },
      };
      subs.add(tracked);
      return tracked;
    },

    async read(r: ReadOptions): Promise<Reader> {
      const positions = await startOffsets(r.topic, r.from);
      // kafkajs consumes only as a group member: this one is used by one reader, commits
      // nothing, and is deleted when the reader stops (named for the client and topic, so an operator
      // can tell whose it is should a process die before deleting it).
      const groupId = `${opts.clientId}.read.${r.topic}.${randomBytes(6).toString('hex')}`;
      const sub = await subscribeKafka(
        { kafka, logger: opts.logger, concurrency: positions.size },
        {
          groupId,
          topics: [r.topic],
          handler: r.handler,
          maxBatchSize: r.maxBatchSize,
          maxWaitMs: r.maxWaitMs,
        },
        positions,
      );
      const reader: Reader = {
        ready: sub.ready,
        async stop() {
          subs.delete(reader);
          await sub.stop();
          await withAdmin((a) => a.deleteGroups([groupId])).catch((err) => {
            const codes = (err.cause?.groups ?? []).map((g: { errorCode?: number }) => g.errorCode);
            // GROUP_ID_NOT_FOUND: the broker already removed the empty group.
            if (codes.length === 0 || codes.some((c: number) => c !== 69))
              log.warn({ err, group: groupId }, 'could not delete the group of an ungrouped read');
          });
        },
      };
      subs.add(reader);
      return reader;
    },

    async offsets(topic: string) {
      const ends = await withAdmin((a) => a.fetchTopicOffsets(topic));
      return ends
        .map((e) => ({ partition: e.partition, start: BigInt(e.low), end: BigInt(e.high) }))
        .sort((x, y) => x.partition - y.partition);
    },

    async partitioner(topic: string) {
      // The producer's own partitioner (murmur2 of the key, as Java clients do) over the topic's
      // partition count.
      const n = await withAdmin(async (a) => {
        const meta = await a.fetchTopicMetadata({ topics: [topic] });
        return meta.topics[0]?.partitions.length ?? 0;
      });
      if (n === 0) throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', `Topic ${topic} has no partitions`);
      const pick = Partitioners.DefaultPartitioner();
      const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [],
        isr: [],
      }));
      return (key: string) => pick({ topic, partitionMetadata, message: { key, value: null } });
    },

    async lag(groupId: string, topic: string) {
      return withAdmin(async (a) => {
        const [ends, committed] = await Promise.all([
          a.fetchTopicOffsets(topic),
          a.fetchOffsets({ groupId, topics: [topic] }),
        ]);
        const done = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
        return ends
          .map((e) => {
            const c = done.get(e.partition) ?? -1n;
            return { partition: e.partition, committed: c < 0n ? BigInt(e.low) : c, end: BigInt(e.high) };
          })
          .sort((x, y) => x.partition - y.partition);
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...subs].map((s) => s.stop()));
      // Publishes already accepted get their answer (each is bounded by its deadline).
      while (pumping || queue.length > 0) await new Promise((r) => setTimeout(r, 10));
      const p = current;
      current = undefined;
      await Promise.allSettled([p?.producer.disconnect(), admin?.then((a) => a.disconnect())]);
    },
  };
}
