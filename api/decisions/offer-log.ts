import type { Bus, OutMessage } from '../../core/bus/types.ts';
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

/** Records waiting for their batch; taken as what is published (`B`: the records, or messages). */
export type RecordQueue<T, B> = {
  readonly length: number;
  /** Queues a record; false when there is no room for it. */
  add(record: T): boolean;
  /** The waiting records, oldest first, as they are published, and an empty queue. */
  take(): B[];
};

/** Records kept as they are until their batch is published. */
function arrayQueue<T>(): RecordQueue<T, T> {
  let records: T[] = [];
  return {
    get length() {
      return records.length;
    },
    add(record) {
      records.push(record);
      return true;
    },
    take() {
      const batch = records;
      records = [];
      return batch;
    },
  };
}

export function createBatchLog<T, B>(deps: {
  /** Records wait here (encoded as it chooses) until their batch is published. */
  queue: RecordQueue<T, B>;
  /** Resolves once the bus holds the batch durably. */
  publish: (batch: B[]) => Promise<unknown>;
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
  const waiting = deps.queue;
  let inFlight: Promise<void> = Promise.resolve();
  let failures = 0;
  /** Records handed to the bus and not yet answered for: with `waiting`, bounded by MAX_WAITING. */
  let queued = 0;

  const publish = async (batch: B[]) => {
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
    const batch = waiting.take();
    queued += batch.length;
    inFlight = inFlight.then(() => publish(batch));
    return inFlight;
  };
  const timer = setInterval(() => void flush(), deps.intervalMs ?? 200);
  timer.unref();

  return {
    add(record) {
      if (waiting.length + queued >= MAX_WAITING || !waiting.add(record)) {
        unlogged?.inc();
        return;
      }
      if (waiting.length >= batchSize) void flush();
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}

/** Characters JSON never escapes that ids are mostly made of: letters, digits and ` _.,:;@~+=/-`. */
function plain(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 64 && c <= 90) || // @ and A–Z
    (c >= 43 && c <= 59) || // + , - . / 0–9 : ;
    c === 95 ||
    c === 32 ||
    c === 126 ||
    c === 61
  );
}

/**
 * Offers waiting for their batch as bytes: each offer is encoded when it is made, into one buffer
 * reused from batch to batch (its user id, the record's key, then its JSON), so a waiting offer is
 * no object for the collector to trace or promote. Its bytes are copied out when its batch is published.
 */
export class OfferQueue implements RecordQueue<ServedFact, OutMessage> {
  private buf: Buffer;
  /** Per record: where its key ends and where its value ends. */
  private marks = new Uint32Array(2 * 1024);
  private pos = 0;
  private n = 0;
  /** The ISO time of the last offer's second, without its milliseconds and `Z`. */
  private second = Number.NaN;
  private secondIso = '';

  constructor(
    initialBytes = 256 * 1024,
    private readonly maxBytes = 16 * 1024 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  get length() {
    return this.n;
  }

  /** Bytes reserved for waiting offers. */
  get bytes() {
    return this.buf.length + this.marks.byteLength;
  }

  /**
   * Writes the offer's user id (the key) and the offers topic's record of it: the same JSON as
   * JSON.stringify of {decision_id, campaign_id, business_id, user_id, thread_id, channel,
   * price_micros, offered_at}, written straight into the buffer (no string made of it).
   */
  add(f: ServedFact): boolean {
    // Offers made in the same second share the ISO form of its start (`….sssZ` ends every one).
    const second = Math.floor(f.atMs / 1000);
    if (second !== this.second) {
      this.second = second;
      this.secondIso = new Date(second * 1000).toISOString().slice(0, -4);
    }
    const ms = f.atMs - second * 1000;
    // JSON writes a UTF-16 unit as at most 6 characters (a \u escape and four hex digits), UTF-8 as at most 3 bytes; the
    // user id is written twice; the names, the price and the time take less than 200.
    const ids = f.decisionId.length + f.campaignId.length + f.businessId.length + f.threadId.length;
    const most = 6 * (ids + f.channel.length) + 9 * f.userId.length + 200;
    if (this.pos + most > this.buf.length && !this.grow(this.pos + most)) return false;
    if (2 * this.n + 2 > this.marks.length) {
      const m = new Uint32Array(this.marks.length * 2);
      m.set(this.marks);
      this.marks = m;
    }
    let p = this.utf8(this.pos, f.userId);
    this.marks[2 * this.n] = p;
    p = this.json(this.ascii(p, '{"decision_id":'), f.decisionId);
    p = this.json(this.ascii(p, ',"campaign_id":'), f.campaignId);
    p = this.json(this.ascii(p, ',"business_id":'), f.businessId);
    p = this.json(this.ascii(p, ',"user_id":'), f.userId);
    p = this.json(this.ascii(p, ',"thread_id":'), f.threadId);
    p = this.json(this.ascii(p, ',"channel":'), f.channel);
    p = this.ascii(this.ascii(p, ',"price_micros":'), `${f.priceMicros}`);
    p = this.ascii(this.ascii(p, ',"offered_at":"'), this.secondIso);
    p = this.ascii(p, `${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"}`);
    this.pos = p;
    this.marks[2 * this.n + 1] = p;
    this.n++;
    return true;
  }

  /** Writes text known to be ASCII at p; returns where it ends. */
  private ascii(p: number, s: string): number {
    const buf = this.buf;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    return p;
  }

  /** Writes s as UTF-8 at p (one byte a character while it is ASCII); returns where it ends. */
  private utf8(p: number, s: string): number {
    const buf = this.buf;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return p - i + buf.write(s, p - i);
      buf[p++] = c;
    }
    return p;
  }

  /** Writes s as a JSON string at p: between quotes as it is when nothing in it needs escaping. */
  private json(p: number, s: string): number {
    const buf = this.buf;
    const start = p;
    buf[p++] = 34;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (!plain(c)) return start + buf.write(JSON.stringify(s), start);
      buf[p++] = c;
    }
    buf[p++] = 34;
    return p;
  }

  private grow(need: number): boolean {
    if (need > this.maxBytes) return false;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const b = Buffer.allocUnsafe(Math.min(size, this.maxBytes));
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
    return true;
  }

  take(): OutMessage[] {
    // Strings, not views of this buffer: the bus may read them after it is reused. Copies as bytes
    // into Node's shared slabs saved the bus an encoding, but left a slab held by any one value
    // still referenced: over 1,000,000 decisions in the benchmark, up to 24 MB more array buffers
    // after a full collection in some runs; strings keep the memory measure steady.
    const out: OutMessage[] = new Array(this.n);
    let at = 0;
    for (let i = 0; i < this.n; i++) {
      const keyEnd = this.marks[2 * i];
      const end = this.marks[2 * i + 1];
      out[i] = { key: this.buf.toString('utf8', at, keyEnd), value: this.buf.toString('utf8', keyEnd, end) };
      at = end;
    }
    this.pos = 0;
    this.n = 0;
    return out;
  }
}

export type OfferLog = BatchLog<ServedFact>;

/** Offers on the offers topic, keyed by user. */
export function createOfferLog(deps: {
  bus: Bus;
  topic: string;
  metrics?: Metrics;
  logger: Logger;
}): OfferLog {
  return createBatchLog<ServedFact, OutMessage>({
    ...deps,
    name: 'offers',
    queue: new OfferQueue(),
    publish: (messages) => deps.bus.publish(deps.topic, messages),
  });
}

/** Canonical events (sponsored.withheld) on the events topic, keyed by user as ingest keys them. */
export function createEventLog(deps: { feed: EventFeed; topic: string; metrics?: Metrics; logger: Logger }) {
  return createBatchLog<CanonicalEvent, CanonicalEvent>({
    ...deps,
    name: 'withheld',
    queue: arrayQueue(),
    publish: (events) => deps.feed.publish(deps.topic, events),
  });
}
