import type { EventBatch } from '../../core/events/feed.ts';
import type { EventMessage } from '../../core/events/message.ts';
import type { Offsets } from '../../core/bus/wait.ts';
import { compileRule } from '../../core/segments/rule.ts';
import type { SegmentRecord } from '../../core/segments/store.ts';
import {
  type Change,
  type SegmentDef,
  StreamingEvaluator,
  type StreamEvent,
  type UserRow,
} from '../../core/segments/stream.ts';

// What the segments processor decides, without a bus, a store or a timer: consumed events, stored
// state and the time in, membership changes out. Besides the streaming evaluator's state it keeps
// which segment versions are loaded, which partitions this member announces changes for, how far
// each partition is reflected in the state, and the events consumed but perhaps not yet stored
// (replayed into a segment when it loads). The coordinator (../segments.ts) does the I/O around it.

/** What a re-read of the segment definitions asks for, in this order. */
export type RefreshPlan = {
  /** Segments loaded at the previous refresh whose stored membership is checked once more. */
  verify: string[];
  /** Segments new or changed since they were loaded. */
  load: SegmentRecord[];
  /** Segments loaded but deleted or gone, with their tombstone when there is one. */
  drop: { id: string; tomb?: SegmentRecord }[];
};

/** The shape of a canonical event the evaluator uses; throws if the message is not one. */
export function decodeEvent(m: EventMessage): StreamEvent {
  // Everything on the events topic was validated by its producer; check only the shape used.
  const e = m.event();
  const ms = Date.parse(e.occurred_at);
  if (typeof e.user_id !== 'string' || typeof e.business_id !== 'string' || !Number.isFinite(ms)) {
    throw new Error('not a canonical event');
  }
  return {
    event_id: e.event_id,
    type: e.type,
    business_id: e.business_id,
    user_id: e.user_id,
    channel: e.channel,
    props: e.props ?? {},
    ms,
  };
}

export function segmentDef(s: SegmentRecord): SegmentDef {
  return { id: s.id, businessId: s.business_id ?? undefined, rule: compileRule(s.rule), version: s.version };
}

export class SegmentsEvaluator {
  readonly stream = new StreamingEvaluator();
  private readonly loaded = new Map<string, number>(); // segment id → version held
  // Segments loaded at the previous refresh: their stored membership is checked once more, in case
  // the API was still writing the initial membership when they were loaded.
  private toVerify = new Set<string>();
  // Messages consumed lately, kept as they came (decoded only if a segment loads and needs them)
  // until stored: kept longer, they would only weigh on the heap.
  private recent: { at: number; m: EventMessage }[] = [];
  private recentHead = 0;
  // Partitions of the events topic this member holds; null until first assigned, and until then
  // nothing is announced.
  private owned: Set<number> | null = null;
  private partitionOf: (userId: string) => number = () => 0;
  // Per partition, the offset up to which events are reflected in this state.
  private readonly seen: Offsets = new Map();

  constructor(
    private readonly opts: {
      /** Consumed events are replayed into loads until stored, and at most this long. */
      recentMs: number;
      /** Told of each message that is not a canonical event; the message is skipped. */
      onUndecodable?: (m: EventMessage, err: unknown) => void;
    },
  ) {}

  /** How the events topic maps users to partitions. */
  usePartitioner(partitionOf: (userId: string) => number) {
    this.partitionOf = partitionOf;
  }

  /** Takes the partitions this member now holds. */
  assign(parts: Set<number>) {
    this.owned = parts;
  }

  /** Partitions this member announces changes for, sorted; null before the first assignment. */
  held(): number[] | null {
    return this.owned ? [...this.owned].sort((a, b) => a - b) : null;
  }

  /** The changes this member announces: those of users keyed to the partitions it holds. */
  announced(changes: Change[]): Change[] {
    const held = this.owned;
    return held ? changes.filter((c) => held.has(this.partitionOf(c.userId))) : [];
  }

  /**
   * One batch's first copies at time t: changes due by time, then those the events cause. Events
   * below `stored` (the sink's stored offsets) or older than recentMs are no longer kept for loads.
   */
  consume(firsts: readonly EventMessage[], t: number, stored: Offsets): Change[] {
    const changes = this.stream.advance(t);
    // With no segment loaded no event can change anything: none is decoded.
    const live = this.stream.size > 0;
    for (const m of firsts) {
      this.recent.push({ at: t, m });
      if (!live) continue;
      const e = this.decode(m);
      if (e) for (const c of this.stream.ingest(e, t)) changes.push(c);
    }
    const isStored = (m: EventMessage) => m.offset < (stored.get(m.partition) ?? -1n);
    const { recent } = this;
    while (
      this.recentHead < recent.length &&
      (recent[this.recentHead].at < t - this.opts.recentMs || isStored(recent[this.recentHead].m))
    )
      this.recentHead++;
    if (this.recentHead > 10_000 && this.recentHead * 2 > recent.length) {
      this.recent = recent.slice(this.recentHead);
      this.recentHead = 0;
    }
    return changes;
  }

  /** The batch's changes are announced: its events are reflected in this state. */
  reflected(batch: EventBatch) {
    const last = batch.messages.at(-1);
    if (last) this.reflect(batch.partition, last.offset + 1n);
  }

  /** Notes offsets the group has committed (everything before them is in the store). */
  reflectCommitted(committed: Offsets) {
    for (const [p, o] of committed) this.reflect(p, o);
  }

  /** Whether the group has committed, on any of these partitions, events this state lacks. */
  staleFor(parts: Set<number>, committed: Offsets): boolean {
    for (const [p, o] of committed) if (parts.has(p) && o > (this.seen.get(p) ?? 0n)) return true;
    return false;
  }

  /** What to verify, load and drop, given every segment definition (tombstones included). */
  plan(all: SegmentRecord[]): RefreshPlan {
    const byId = new Map(all.map((s) => [s.id, s]));
    const live = all.filter((s) => !s.deleted);
    const verify = [...this.toVerify].filter((id) => {
      const s = byId.get(id);
      return s !== undefined && !s.deleted && this.loaded.get(id) === s.version;
    });
    this.toVerify = new Set();
    const liveIds = new Set(live.map((s) => s.id));
    return {
      verify,
      load: live.filter((s) => this.loaded.get(s.id) !== s.version),
      drop: [...this.loaded.keys()]
        .filter((id) => !liveIds.has(id))
        .map((id) => ({ id, tomb: byId.get(id) })),
    };
  }

  /**
   * (Re)loads a segment from its stored state and the members last announced, replaying the
   * events consumed but perhaps not yet stored; returns the changes against those members. The
   * segment counts as loaded once markLoaded says its changes are announced.
   */
  load(s: SegmentRecord, rows: Iterable<UserRow>, published: Iterable<string>, t: number): Change[] {
    const changes = this.stream.load(segmentDef(s), rows, published, t);
    for (let i = this.recentHead; i < this.recent.length; i++) {
      const e = this.decode(this.recent[i].m);
      if (e) changes.push(...this.stream.ingest(e, t, s.id));
    }
    return changes;
  }

  /** The segment's load is announced: it is not loaded again until its version changes. */
  markLoaded(s: SegmentRecord) {
    this.loaded.set(s.id, s.version);
    this.toVerify.add(s.id);
  }

  /** Forgets a deleted segment; its stored members are exited from the store, not from here. */
  drop(id: string, t: number) {
    this.stream.remove(id, t);
    this.loaded.delete(id);
  }

  /** Every segment is loaded again at the next refresh. */
  reloadAll() {
    this.loaded.clear();
  }

  /** Changes that bring a segment's stored membership back to this state. */
  resync(segmentId: string, stored: Set<string>, t: number): Change[] {
    return this.stream.resync(segmentId, stored, t);
  }

  /** Changes due by time alone. */
  advance(t: number): Change[] {
    return this.stream.advance(t);
  }

  /** Forgets erased people: their state and the consumed events kept for loads; returns states dropped. */
  forget(erased: (userId: string, segment: SegmentDef | undefined) => boolean): number {
    this.recent = this.recent.slice(this.recentHead).filter(({ m }) => !erased(m.key, undefined));
    this.recentHead = 0;
    return this.stream.forget(erased);
  }

  private reflect(partition: number, offset: bigint) {
    if (offset > (this.seen.get(partition) ?? 0n)) this.seen.set(partition, offset);
  }

  private decode(m: EventMessage): StreamEvent | undefined {
    try {
      return decodeEvent(m);
    } catch (err) {
      this.opts.onUndecodable?.(m, err);
      return undefined;
    }
  }
}
