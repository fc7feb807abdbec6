import type {
  BatchContext,
  Bus,
  InMessage,
  OutMessage,
  Position,
  ReadOptions,
  Reader,
  SubscribeOptions,
  Subscription,
} from '../bus/types.ts';
import { isParleyError, ParleyError } from '../errors.ts';
import { HeldWindow } from './held.ts';
import { EventMessage } from './message.ts';
import type { CanonicalEvent } from './schema.ts';

// Events one layer above the bus. The bus moves keyed byte records; the feed publishes canonical
// events and hands consumers EventMessages, whose event is decoded at most once per process:
// consumers of one topic in this process share one EventMessage per message while any of them has
// yet to read it, and an event published in this process reaches them as its publisher held it,
// known by the position the bus wrote it at. What is held for consumers is dropped once every
// consumer of the topic in this process has read past it, and in any case beyond a memory bound.

export type EventBatch = { topic: string; partition: number; messages: EventMessage[] };

/** As the bus's BatchHandler, for EventMessages: the same commit and retry rules. */
// biome-ignore lint/suspicious/noConfusingVoidType: handlers that finish the whole batch return nothing
export type EventHandler = (batch: EventBatch, ctx: BatchContext) => Promise<number | undefined | void>;

export type FeedSubscribeOptions = Omit<SubscribeOptions, 'handler'> & { handler: EventHandler };
export type FeedReadOptions = Omit<ReadOptions, 'handler'> & { handler: EventHandler };

export type EventFeedOptions = {
  /**
   * Memory for messages held for consumers here that have yet to read them, per partition,
   * counting each as 200 bytes and twice its JSON (default 16 MiB). Beyond it the oldest are
   * dropped, and a consumer that comes to them decodes them from the bus's bytes.
   */
  maxHeldBytesPerPartition?: number;
};

/**
 * A message held for consumers here: the event its publisher here handed over until a consumer
 * here meets it, then the EventMessage they share.
 */
type Window = HeldWindow<EventMessage | CanonicalEvent>;
/** What a held message is counted as: its decoded event as twice its JSON, and its objects. */
const costOf = (jsonLength: number) => 200 + 2 * jsonLength;
/**
 * One consumer (a subscription or a read) of a topic: how far it has read in each partition, and
 * for a group member, the partitions it holds (a read holds them all).
 */
type Cursor = { next: Map<number, number>; assigned?: Map<string, Set<number>> };

export class EventFeed {
  private readonly windows = new Map<string, Window[]>();
  private readonly cursors = new Map<string, Set<Cursor>>();
  private readonly maxHeld: number;
  private readonly partitioners = new Map<string, Promise<(key: string) => number>>();

  constructor(
    readonly bus: Bus,
    opts: EventFeedOptions = {},
  ) {
    this.maxHeld = opts.maxHeldBytesPerPartition ?? 16 * 1024 * 1024;
  }

  /**
   * Publishes canonical events, keyed by user_id (so one user's events stay in order). Resolves
   * once the bus holds them durably; a bus failure becomes a retriable 503.
   */
  async publish(topic: string, events: readonly CanonicalEvent[]): Promise<void> {
    if (events.length === 0) return;
    const out = events.map((e) => ({ key: e.user_id, value: JSON.stringify(e) }));
    if (!this.cursors.get(topic)?.size) {
      await this.send(topic, out); // nobody here reads the topic: nothing to hand over
      return;
    }
    // One publish per partition, each handed over as soon as it is durable: the bus may show a
    // partition's records to readers before the others' are written.
    const partitionOf = await this.partitioner(topic);
    const groups = new Map<number, number[]>();
    for (let i = 0; i < out.length; i++) {
      const p = partitionOf(out[i].key);
      const g = groups.get(p);
      if (g) g.push(i);
      else groups.set(p, [i]);
    }
    await Promise.all(
      [...groups.values()].map(async (idx) => {
        const written = await this.send(topic, idx.length === out.length ? out : idx.map((i) => out[i]));
        this.handOver(
          topic,
          written,
          (k) => events[idx[k]],
          (k) => out[idx[k]].value.length,
        );
      }),
    );
  }

  private async send(topic: string, messages: OutMessage[]): Promise<Position[]> {
    try {
      return await this.bus.publish(topic, messages);
    } catch (err) {
      if (isParleyError(err) && err.code === 'PARLEY_ERR_BUS_UNAVAILABLE') throw err;
      throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err });
    }
  }

  /** The bus's partitioner of a topic, asked once (again after a failure). */
  private partitioner(topic: string): Promise<(key: string) => number> {
    let p = this.partitioners.get(topic);
    if (!p) {
      p = this.bus.partitioner(topic).catch((err) => {
        this.partitioners.delete(topic);
        throw isParleyError(err) && err.code === 'PARLEY_ERR_BUS_UNAVAILABLE'
          ? err
          : new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err });
      });
      this.partitioners.set(topic, p);
    }
    return p;
  }

  /** Holds the events just written for the consumers here that have yet to read them. */
  private handOver(
    topic: string,
    written: Position[],
    eventAt: (i: number) => CanonicalEvent,
    lengthAt: (i: number) => number,
  ) {
    const cursors = this.cursors.get(topic);
    if (!cursors?.size) return;
    // Per partition written to (one, as publish sends them): its window, and the offset every
    // consumer here has read past.
    let partition = -1;
    let w: Window | undefined;
    let passed = 0;
    for (let i = 0; i < written.length; i++) {
      const at = written[i];
      if (at.partition !== partition || !w) {
        partition = at.partition;
        w = this.window(topic, partition);
        passed = this.passed(topic, cursors, partition);
      }
      const o = Number(at.offset);
      const met = w.get(o);
      // A consumer here met it first: those that decode it later need not parse it.
      if (met instanceof EventMessage) met.adopt(eventAt(i));
      // Unless every consumer here has read past it already, it is held for them.
      else if (o >= passed) w.set(o, eventAt(i), costOf(lengthAt(i)), passed);
    }
  }

  /** Reads as a member of a consumer group (see Bus.subscribe), handing over EventMessages. */
  async subscribe(o: FeedSubscribeOptions): Promise<Subscription> {
    const cursor = this.open(o.topics);
    try {
      const sub = await this.bus.subscribe({
        ...o,
        handler: (b, ctx) => o.handler(this.hand(cursor, b), ctx),
        onAssign: (assigned) => {
          cursor.assigned = new Map([...assigned].map(([t, ps]) => [t, new Set(ps)]));
          o.onAssign?.(assigned);
        },
      });
      return {
        ready: sub.ready,
        stop: async () => {
          await sub.stop();
          this.close(cursor, o.topics);
        },
      };
    } catch (err) {
      this.close(cursor, o.topics);
      throw err;
    }
  }

  /** Reads a topic outside any consumer group (see Bus.read), handing over EventMessages. */
  async read(o: FeedReadOptions): Promise<Reader> {
    const cursor = this.open([o.topic]);
    try {
      const reader = await this.bus.read({ ...o, handler: (b, ctx) => o.handler(this.hand(cursor, b), ctx) });
      return {
        ready: reader.ready,
        stop: async () => {
          await reader.stop();
          this.close(cursor, [o.topic]);
        },
      };
    } catch (err) {
      this.close(cursor, [o.topic]);
      throw err;
    }
  }

  /** Messages held for consumers of a topic's partition (for tests and metrics). */
  held(topic: string, partition: number): number {
    return this.windows.get(topic)?.[partition]?.size ?? 0;
  }

  private open(topics: string[]): Cursor {
    const cursor: Cursor = { next: new Map() };
    for (const t of topics) {
      const set = this.cursors.get(t) ?? new Set();
      this.cursors.set(t, set);
      set.add(cursor);
    }
    return cursor;
  }

  private close(cursor: Cursor, topics: string[]) {
    for (const t of topics) {
      const set = this.cursors.get(t);
      set?.delete(cursor);
      (this.windows.get(t) ?? []).forEach((w, p) => {
        // With nobody left here to read the topic, nothing is held for it.
        if (!set?.size) w.clear();
        else w.trim(this.passed(t, set, p));
      });
    }
  }

  private window(topic: string, partition: number): Window {
    let ws = this.windows.get(topic);
    if (!ws) {
      ws = [];
      this.windows.set(topic, ws);
    }
    let w = ws[partition];
    if (!w) {
      w = new HeldWindow(this.maxHeld);
      ws[partition] = w;
    }
    return w;
  }

  /** The offset every consumer here that reads this partition has read up to. */
  private passed(topic: string, cursors: Set<Cursor>, partition: number): number {
    let min = Number.POSITIVE_INFINITY;
    for (const c of cursors) {
      if (c.assigned && !c.assigned.get(topic)?.has(partition)) continue; // another member's
      const n = c.next.get(partition);
      if (n === undefined) return Number.NEGATIVE_INFINITY; // yet to read it
      if (n < min) min = n;
    }
    return min;
  }

  private hand(cursor: Cursor, b: { topic: string; partition: number; messages: InMessage[] }): EventBatch {
    const cursors = this.cursors.get(b.topic) as Set<Cursor>;
    const w = this.window(b.topic, b.partition);
    // Held only while another consumer here may still read it.
    const share = cursors.size > 1;
    const messages = new Array<EventMessage>(b.messages.length);
    for (let i = 0; i < b.messages.length; i++) {
      const m = b.messages[i];
      const o = Number(m.offset);
      const h = w.get(o);
      if (h instanceof EventMessage) {
        messages[i] = h;
        continue;
      }
      const em = new EventMessage(m, h);
      messages[i] = em;
      if (share) w.set(o, em, costOf(m.value.length));
      else if (h) w.delete(o);
    }
    const last = b.messages.at(-1);
    if (last) {
      const next = Number(last.offset) + 1;
      if (next > (cursor.next.get(b.partition) ?? -1)) cursor.next.set(b.partition, next);
      w.trim(this.passed(b.topic, cursors, b.partition));
    }
    return { topic: b.topic, partition: b.partition, messages };
  }
}
