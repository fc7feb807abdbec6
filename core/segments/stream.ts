import { matchesLeaf } from './reference.ts';
import { type CompiledRule, countHolds, evalTree, type Leaf } from './rule.ts';

// The streaming evaluator: segment membership kept current as events arrive and as time passes.
// Pure (time is passed in), so tests can drive it. Per segment and user it keeps the first
// in-scope event time (the universe) and the events matching some leaf, keyed by event_id, so a
// duplicate or a replay changes nothing, and a late event counts exactly as if it came in order.

export type SegmentDef = { id: string; businessId?: string; rule: CompiledRule; version: number };
export type Change = {
  segmentId: string;
  userId: string;
  businessId?: string;
  member: boolean;
  atMs: number;
};
export type StreamEvent = {
  event_id: string;
  type: string;
  business_id: string;
  user_id: string;
  channel: string;
  props: Record<string, unknown>;
  ms: number;
};
export type UserRow = { userId: string; firstMs: number; events: [string, number, number][] };

type UserState = {
  firstMs: number;
  /** The state holds every event that counts at any time from here on (older ones were pruned). */
  exactFromMs: number;
  /** When this evaluator last dated a change of the user: a later change is never dated before it. */
  changedMs: number;
  events: Map<string, { ms: number; mask: number }>;
  member: boolean;
  nextMs: number;
};
type SegmentState = { def: SegmentDef; users: Map<string, UserState> };
type Due = { ms: number; segmentId: string; userId: string };

export class StreamingEvaluator {
  private readonly segments = new Map<string, SegmentState>();
  private readonly heap: Due[] = [];
  private clock = 0;

  get nowMs() {
    return this.clock;
  }

  /** How many segments are loaded. */
  get size() {
    return this.segments.size;
  }

  segment(id: string): SegmentDef | undefined {
    return this.segments.get(id)?.def;
  }

  segmentIds(): string[] {
    return [...this.segments.keys()];
  }

  /**
   * (Re)loads a segment from stored state, evaluates every user at now and returns the changes
   * against `published` (the members last announced), including exits of users no longer known.
   */
  load(def: SegmentDef, rows: Iterable<UserRow>, published: Iterable<string>, nowMs: number): Change[] {
    this.tick(nowMs);
    const seg: SegmentState = { def, users: new Map() };
    this.segments.set(def.id, seg);
    const was = new Set(published);
    // The state query keeps each windowed event until two windows have passed (sql.ts), so the
    // state is exact from one (shortest) window before now.
    const windows = def.rule.leaves.flatMap((l) => (l.withinMs === undefined ? [] : [l.withinMs]));
    const exactFromMs = windows.length ? nowMs - Math.min(...windows) : -Infinity;
    for (const r of rows) {
      const u: UserState = {
        firstMs: r.firstMs,
        exactFromMs,
        changedMs: -Infinity,
        events: new Map(),
        member: was.has(r.userId),
        nextMs: Infinity,
      };
      for (const [id, ms, mask] of r.events) u.events.set(id, { ms, mask });
      seg.users.set(r.userId, u);
    }
    const changes: Change[] = [];
    for (const [userId, u] of seg.users) this.evaluate(seg, userId, u, changes);
    for (const userId of was) {
      if (!seg.users.has(userId)) changes.push(this.change(seg, userId, false));
    }
    return changes;
  }

  /**
   * Changes that bring `stored` (membership as others last wrote it) back to this evaluator's
   * view, without changing the view: for when another writer may have raced with a load.
   */
  resync(segmentId: string, stored: Set<string>, nowMs: number): Change[] {
    this.tick(nowMs);
    const seg = this.segments.get(segmentId);
    if (!seg) return [];
    const out: Change[] = [];
    for (const [userId, u] of seg.users)
      if (u.member !== stored.has(userId))
        out.push(this.change(seg, userId, u.member, Math.max(this.since(seg, u), u.changedMs)));
    for (const userId of stored) if (!seg.users.has(userId)) out.push(this.change(seg, userId, false));
    return out;
  }

  /** Forgets the users `erased` names in a segment (an erasure): no change is announced. */
  forget(erased: (userId: string, def: SegmentDef) => boolean): number {
    let n = 0;
    for (const seg of this.segments.values())
      for (const userId of seg.users.keys())
        if (erased(userId, seg.def)) {
          seg.users.delete(userId);
          n++;
        }
    return n;
  }

  /** Drops a segment; its members are returned as exits. */
  remove(id: string, nowMs: number): Change[] {
    this.tick(nowMs);
    const seg = this.segments.get(id);
    if (!seg) return [];
    this.segments.delete(id);
    return [...seg.users].filter(([, u]) => u.member).map(([userId]) => this.change(seg, userId, false));
  }

  /** Applies one event (any order, any number of times) and returns the membership changes it causes. */
  ingest(e: StreamEvent, nowMs: number, onlySegment?: string): Change[] {
    this.tick(nowMs);
    const changes: Change[] = [];
    for (const seg of this.segments.values()) {
      const { def } = seg;
      if (onlySegment !== undefined && def.id !== onlySegment) continue;
      if (def.businessId !== undefined && e.business_id !== def.businessId) continue;
      let u = seg.users.get(e.user_id);
      if (!u) {
        u = {
          firstMs: e.ms,
          exactFromMs: -Infinity,
          changedMs: -Infinity,
          events: new Map(),
          member: false,
          nextMs: Infinity,
        };
        seg.users.set(e.user_id, u);
      }
      u.firstMs = Math.min(u.firstMs, e.ms);
      let mask = 0;
      for (const l of def.rule.leaves) {
        if (matchesLeaf(l, e) && (l.withinMs === undefined || e.ms + l.withinMs > this.clock))
          mask |= 1 << l.index;
      }
      if (mask !== 0 && !u.events.has(e.event_id)) u.events.set(e.event_id, { ms: e.ms, mask });
      this.evaluate(seg, e.user_id, u, changes);
    }
    return changes;
  }

  /** Moves time forward: users whose windows opened or closed by now are re-evaluated. */
  advance(nowMs: number): Change[] {
    this.tick(nowMs);
    const changes: Change[] = [];
    while (this.heap.length && this.heap[0].ms <= this.clock) {
      const due = this.pop();
      const seg = this.segments.get(due.segmentId);
      const u = seg?.users.get(due.userId);
      if (!seg || !u || u.nextMs !== due.ms) continue; // superseded
      u.nextMs = Infinity;
      this.evaluate(seg, due.userId, u, changes);
    }
    return changes;
  }

  members(segmentId: string): string[] {
    const seg = this.segments.get(segmentId);
    return seg
      ? [...seg.users]
          .filter(([, u]) => u.member)
          .map(([id]) => id)
          .sort()
      : [];
  }

  /** The earliest time at which some membership may change by time alone. */
  nextDueMs(): number {
    return this.heap[0]?.ms ?? Infinity;
  }

  private tick(nowMs: number) {
    if (nowMs > this.clock) this.clock = nowMs;
  }

  private change(seg: SegmentState, userId: string, member: boolean, atMs = this.clock): Change {
    return { segmentId: seg.def.id, userId, businessId: seg.def.businessId, member, atMs };
  }

  /** Whether the rule holds for the user at t, from the events in the state. */
  private holdsAt(seg: SegmentState, u: UserState, t: number): boolean {
    const { leaves, root } = seg.def.rule;
    const counts = new Array<number>(leaves.length).fill(0);
    for (const ev of u.events.values())
      for (const l of leaves)
        if (
          (ev.mask & (1 << l.index)) !== 0 &&
          ev.ms <= t &&
          (l.withinMs === undefined || ev.ms + l.withinMs > t)
        )
          counts[l.index]++;
    return u.firstMs <= t && evalTree(root, (l: Leaf) => countHolds(l, counts[l.index]));
  }

  /**
   * Event time since which the user's current membership holds without a break: the latest time
   * at or before the clock where the rule's value last changed (an event counting from its
   * occurred_at, a window closing at occurred_at + W, the user's first event). Evaluation only
   * changes at those times, so walking them back from the clock finds it; it is not looked for
   * before the state is exact (exactFromMs).
   */
  private since(seg: SegmentState, u: UserState): number {
    const T = this.clock;
    const times = new Set<number>([u.firstMs]);
    if (Number.isFinite(u.exactFromMs)) times.add(u.exactFromMs);
    for (const ev of u.events.values()) {
      times.add(ev.ms);
      for (const l of seg.def.rule.leaves)
        if (l.withinMs !== undefined && (ev.mask & (1 << l.index)) !== 0) times.add(ev.ms + l.withinMs);
    }
    const candidates = [...times].filter((t) => t <= T && t >= u.exactFromMs).sort((a, b) => b - a);
    let at = T;
    for (const t of candidates) {
      if (this.holdsAt(seg, u, t) !== u.member) return at;
      at = t;
    }
    // Members since before what the state holds count from there; an exit with no earlier stay
    // in the state is dated now.
    return u.member ? at : T;
  }

  /** Evaluates one user at the clock, records a change if any, prunes expired events, reschedules. */
  private evaluate(seg: SegmentState, userId: string, u: UserState, changes: Change[]) {
    const T = this.clock;
    const { leaves, root } = seg.def.rule;
    const counts = new Array<number>(leaves.length).fill(0);
    let next = u.firstMs > T ? u.firstMs : Infinity;
    let expired: [string, number][] | undefined; // rarely any: allocated only then
    for (const [id, ev] of u.events) {
      let live = false;
      let lastEnd = ev.ms;
      for (const l of leaves) {
        if ((ev.mask & (1 << l.index)) === 0) continue;
        if (l.withinMs === undefined) {
          live = true;
          if (ev.ms <= T) counts[l.index]++;
          else next = Math.min(next, ev.ms);
        } else {
          const end = ev.ms + l.withinMs; // the event counts while ms <= T < ms + W
          if (end > T) live = true;
          lastEnd = Math.max(lastEnd, end);
          if (ev.ms > T) next = Math.min(next, ev.ms);
          else if (end > T) {
            counts[l.index]++;
            next = Math.min(next, end);
          }
        }
      }
      // Out of every window for good: time only moves forward.
      if (!live) {
        expired ??= [];
        expired.push([id, lastEnd]);
      }
    }
    const member = u.firstMs <= T && evalTree(root, (l: Leaf) => countHolds(l, counts[l.index]));
    if (member !== u.member) {
      u.member = member;
      u.changedMs = Math.max(this.since(seg, u), u.changedMs);
      changes.push(this.change(seg, userId, member, u.changedMs));
    }
    for (const [id, end] of expired ?? []) {
      u.events.delete(id);
      u.exactFromMs = Math.max(u.exactFromMs, end);
    }
    if (next !== u.nextMs) {
      u.nextMs = next;
      if (next !== Infinity) this.push({ ms: next, segmentId: seg.def.id, userId });
    }
  }

  private push(d: Due) {
    const h = this.heap;
    h.push(d);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].ms <= h[i].ms) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  private pop(): Due {
    const h = this.heap;
    const top = h[0];
    const last = h.pop() as Due;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].ms < h[m].ms) m = l;
        if (r < h.length && h[r].ms < h[m].ms) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
