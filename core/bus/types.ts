// The bus: what every role sees, whether it runs on the embedded log or on Kafka.

export type OutMessage = {
  key: string;
  value: Buffer | string;
  headers?: Record<string, string>;
};

/** Where the bus wrote a message. */
export type Position = { partition: number; offset: bigint };

/** Read-only: the embedded bus hands the same message objects to every consumer group. */
export type InMessage = {
  topic: string;
  partition: number;
  offset: bigint;
  key: string;
  value: Buffer;
  /** Milliseconds since the epoch when the bus accepted the message. */
  timestamp: number;
  headers: Record<string, string>;
};

export type Batch = { topic: string; partition: number; messages: InMessage[] };

export type BatchContext = {
  /** Keeps the consumer's group membership alive during long work. */
  heartbeat(): Promise<void>;
  /** Aborted when the consumer is stopping; long work may end early by throwing. */
  signal: AbortSignal;
};

/**
 * Processes one batch (one partition, in offset order). When it resolves, every message in the
 * batch is committed; when it throws, nothing is, and the same batch comes again after a backoff.
 * It may return the number of leading messages it finished, to commit only that prefix.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: handlers that finish the whole batch return nothing
export type BatchHandler = (batch: Batch, ctx: BatchContext) => Promise<number | undefined | void>;

export type SubscribeOptions = {
  groupId: string;
  topics: string[];
  handler: BatchHandler;
  /** Where a group with no committed offset starts: 'earliest' (default) or 'latest'. */
  start?: 'earliest' | 'latest';
  /** Upper bound on messages handed to the handler at once. */
  maxBatchSize?: number;
  /** How long to wait for more messages to fill a batch once one has arrived. */
  maxWaitMs?: number;
  /**
   * Told the partitions this member holds each time they are assigned (at start and after every
   * rebalance), before batches of the new assignment are handed to the handler.
   */
  onAssign?: (assigned: Assignment) => void;
};

/**
 * Where an ungrouped read starts in each partition: the first offset still on the bus, the end
 * (only what is published from now on), given offsets (partitions not named start at the first
 * offset; offsets outside the partition are clamped to its first and end offsets), or the first
 * message the bus accepted at or after a time in milliseconds since the epoch (the end when there
 * is none).
 */
export type ReadFrom = 'earliest' | 'latest' | { offsets: Map<number, bigint> } | { timestamp: number };

export type ReadOptions = {
  topic: string;
  from: ReadFrom;
  /**
   * As for a subscription, but nothing is committed: a returned prefix is where reading goes on,
   * and a failed batch comes again after a backoff.
   */
  handler: BatchHandler;
  maxBatchSize?: number;
  maxWaitMs?: number;
};

/** A tail of every partition of one topic that joins no consumer group and commits nothing. */
export interface Reader {
  /** Stops reading and lets the current batch finish; nothing of the read is left on the bus. */
  stop(): Promise<void>;
  /** Resolves once every partition's start is resolved and reading has begun. */
  readonly ready: Promise<void>;
}

/** Partitions held by one member of a consumer group, by topic. */
export type Assignment = Map<string, number[]>;

export interface Subscription {
  /** Stops fetching, lets the current batch finish and commit, and leaves the group. */
  stop(): Promise<void>;
  /** Resolves when this member has its first partition assignment and is fetching. */
  readonly ready: Promise<void>;
}

export type TopicSpec = { name: string; partitions?: number; compacted?: boolean; retentionMs?: number };

/** A transport of keyed byte records: what is in a value is for the layers above to say. */
export interface Bus {
  /** Creates topics that do not exist yet. */
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  /**
   * Resolves only once every message is durably stored, with where each was written (in the
   * order given); rejects with a retriable ParleyError otherwise.
   */
  publish(topic: string, messages: OutMessage[]): Promise<Position[]>;
  /** Reads as a member of a consumer group, from and committing the group's offsets. */
  subscribe(opts: SubscribeOptions): Promise<Subscription>;
  /** Reads every partition of a topic from chosen offsets or a time, outside any consumer group. */
  read(opts: ReadOptions): Promise<Reader>;
  /** The first and one-past-the-last offset of each partition, in partition order. */
  offsets(topic: string): Promise<{ partition: number; start: bigint; end: bigint }[]>;
  /** The partition a message with this key is published to, as a function of the key. */
  partitioner(topic: string): Promise<(key: string) => number>;
  /** Committed offsets and end offsets per partition (for lag and tests). */
  lag(groupId: string, topic: string): Promise<{ partition: number; committed: bigint; end: bigint }[]>;
  close(): Promise<void>;
}
