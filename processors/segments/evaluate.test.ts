import { describe, expect, it } from 'vitest';
import { EventMessage } from '../../core/events/message.ts';
import type { Rule } from '../../core/segments/rule.ts';
import type { SegmentRecord } from '../../core/segments/store.ts';
import type { Change } from '../../core/segments/stream.ts';
import { SegmentsEvaluator } from './evaluate.ts';

// The segments processor's decisions, driven by hand: no bus, no store, no timer.

const T = Date.parse('2026-03-10T12:00:00.000Z');
const MIN = 60_000;
let n = 0;
let offset = 0n;

const segment = (id: string, rule: Rule, version = 1, deleted = false): SegmentRecord => ({
  id,
  name: id,
  business_id: 'b1',
  rule,
  version,
  created_at: new Date(T).toISOString(),
  updated_at: new Date(T).toISOString(),
  deleted,
});
const event = (user: string, type: string, ms: number, eventId = `e${++n}`) => ({
  event_id: eventId,
  type,
  occurred_at: new Date(ms).toISOString(),
  business_id: 'b1',
  user_id: user,
  thread_id: `t_${user}`,
  channel: 'sms',
  props: {},
});
/** A message of the events topic; users named p1… are keyed to partition 1, the others to 0. */
const message = (e: ReturnType<typeof event>): EventMessage =>
  new EventMessage({
    topic: 'events',
    partition: partitionOf(e.user_id),
    offset: offset++,
    key: e.user_id,
    value: Buffer.from(JSON.stringify(e)),
    timestamp: T,
    headers: {},
  });
const partitionOf = (userId: string) => (userId.startsWith('p1') ? 1 : 0);
const brief = (changes: Change[]) =>
  changes.map((c) => `${c.member ? '+' : '-'}${c.userId}@${(c.atMs - T) / 1000}s`);
const none = new Map<number, bigint>();

/** An evaluator holding both partitions, with one segment loaded from an empty store at T. */
function evaluatorWith(rule: Rule, opts: { recentMs?: number } = {}) {
  const s = new SegmentsEvaluator({ recentMs: opts.recentMs ?? 10_000 });
  s.usePartitioner(partitionOf);
  s.assign(new Set([0, 1]));
  const seg = segment('s', rule);
  expect(s.load(seg, [], [], T)).toEqual([]);
  s.markLoaded(seg);
  return s;
}

describe('SegmentsEvaluator', () => {
  it('enters a user on the event that makes the rule true, dated at that event', () => {
    const s = evaluatorWith({ performed: 'message.received', count: { gte: 2 }, within_seconds: 600 });
    expect(s.consume([message(event('u1', 'message.received', T - 3 * MIN))], T, none)).toEqual([]);
    const changes = s.consume([message(event('u1', 'message.received', T - MIN))], T + 1000, none);
    // The member's since is the entry time (the second message), not the time it was consumed.
    expect(brief(changes)).toEqual(['+u1@-60s']);
    expect(s.stream.members('s')).toEqual(['u1']);
  });

  it('exits a user when the window passes, dated at the window end', () => {
    const s = evaluatorWith({ performed: 'message.received', within_seconds: 60 });
    expect(brief(s.consume([message(event('u1', 'message.received', T - 5000))], T, none))).toEqual([
      '+u1@-5s',
    ]);
    expect(s.advance(T + 54_999)).toEqual([]);
    expect(brief(s.advance(T + 56_000))).toEqual(['-u1@55s']);
    // A batch also applies what time has done by then.
    s.consume([message(event('u2', 'message.received', T + 60_000))], T + 60_000, none);
    expect(brief(s.consume([], T + 200_000, none))).toEqual(['-u2@120s']);
  });

  it('duplicates and late events change nothing', () => {
    const s = evaluatorWith({ performed: 'message.received', within_seconds: 60 });
    const first = event('u1', 'message.received', T);
    expect(brief(s.consume([message(first)], T, none))).toEqual(['+u1@0s']);
    // The same event again (a replay, another copy) and a later one while already in: no change.
    expect(s.consume([message(first), message(first)], T + 1000, none)).toEqual([]);
    expect(s.consume([message(event('u1', 'message.received', T + 500))], T + 2000, none)).toEqual([]);
    // An event whose window has passed by the time it arrives enters nobody.
    expect(s.consume([message(event('u2', 'message.received', T - 2 * MIN))], T + 3000, none)).toEqual([]);
    // The replayed copy did not stretch u1's stay: it exits when its last event's window passes.
    expect(brief(s.advance(T + 61_000))).toEqual(['-u1@60.5s']);
    expect(s.stream.members('s')).toEqual([]);
  });

  it('announces only the changes of users keyed to the partitions it holds, none before assignment', () => {
    const s = new SegmentsEvaluator({ recentMs: 10_000 });
    s.usePartitioner(partitionOf);
    s.load(segment('s', { performed: 'order.placed' }), [], [], T);
    const changes = s.consume(
      [message(event('u1', 'order.placed', T)), message(event('p1-a', 'order.placed', T))],
      T,
      none,
    );
    expect(brief(changes)).toEqual(['+u1@0s', '+p1-a@0s']);
    expect(s.held()).toBeNull();
    expect(s.announced(changes)).toEqual([]);
    s.assign(new Set([1]));
    expect(s.held()).toEqual([1]);
    expect(brief(s.announced(changes))).toEqual(['+p1-a@0s']);
  });

  it('loads from stored state against the members last announced', () => {
    const s = new SegmentsEvaluator({ recentMs: 10_000 });
    const changes = s.load(
      segment('s', { performed: 'order.placed' }),
      [
        { userId: 'kept', firstMs: T - 9 * MIN, events: [['o1', T - 9 * MIN, 1]] },
        { userId: 'new', firstMs: T - 5 * MIN, events: [['o2', T - 3 * MIN, 1]] },
        { userId: 'never', firstMs: T - 5 * MIN, events: [] },
      ],
      ['kept', 'gone'],
      T,
    );
    // A member new to the announced list is dated from its order; one no longer known exits now.
    expect(brief(changes).sort()).toEqual(['+new@-180s', '-gone@0s']);
  });

  it('replays events consumed but not yet stored into a segment that loads', () => {
    const s = new SegmentsEvaluator({ recentMs: 10_000 });
    s.usePartitioner(partitionOf);
    s.assign(new Set([0, 1]));
    // Consumed before any segment is loaded: nothing is decided yet.
    const stored = message(event('a', 'order.placed', T - 1000));
    const unstored = message(event('b', 'order.placed', T - 1000));
    const old = message(event('c', 'order.placed', T - 1000));
    expect(s.consume([old], T - 20_000, none)).toEqual([]);
    expect(s.consume([stored, unstored], T, none)).toEqual([]);
    // The store holds everything before `unstored`: `stored` comes from the store's rows, `old`
    // was consumed more than recentMs ago, so only `unstored` is replayed.
    const upTo = new Map([[0, unstored.offset]]);
    expect(s.consume([], T + 1, upTo)).toEqual([]);
    const seg = segment('buyers', { performed: 'order.placed' });
    expect(brief(s.load(seg, [], [], T + 2))).toEqual(['+b@-1s']);
  });

  it('forgets erased people, in the state and in the events kept for loads', () => {
    const s = evaluatorWith({ performed: 'order.placed' });
    s.consume([message(event('u1', 'order.placed', T)), message(event('u2', 'order.placed', T))], T, none);
    expect(s.forget((userId) => userId === 'u1')).toBe(1);
    expect(s.stream.members('s')).toEqual(['u2']);
    expect(brief(s.load(segment('again', { performed: 'order.placed' }), [], [], T))).toEqual(['+u2@0s']);
  });

  it('skips and reports a message that is not a canonical event', () => {
    const bad: EventMessage[] = [];
    const s = new SegmentsEvaluator({ recentMs: 10_000, onUndecodable: (m) => bad.push(m) });
    s.load(segment('s', { performed: 'order.placed' }), [], [], T);
    const broken = new EventMessage({
      ...message(event('u1', 'order.placed', T)),
      value: Buffer.from('{"event_id":'),
    });
    const good = message(event('u2', 'order.placed', T));
    expect(brief(s.consume([broken, good], T, none))).toEqual(['+u2@0s']);
    expect(bad).toHaveLength(1);
    expect(bad[0]).toBe(broken);
  });

  it('plans a refresh: loads new and changed versions, verifies a load once, drops deleted segments', () => {
    const s = new SegmentsEvaluator({ recentMs: 10_000 });
    const a = segment('a', { performed: 'order.placed' });
    const b = segment('b', { performed: 'message.received' });
    let plan = s.plan([a, b]);
    expect(plan).toEqual({ verify: [], load: [a, b], drop: [] });
    s.load(a, [], [], T);
    s.markLoaded(a); // b failed to load: it is planned again
    plan = s.plan([a, b]);
    expect(plan).toEqual({ verify: ['a'], load: [b], drop: [] });
    expect(s.plan([a, b]).verify).toEqual([]);
    const a2 = { ...a, version: 2 };
    expect(s.plan([a2, b]).load).toEqual([a2, b]);
    const tomb = { ...a2, deleted: true };
    plan = s.plan([tomb, b]);
    expect(plan).toEqual({ verify: [], load: [b], drop: [{ id: 'a', tomb }] });
    s.drop('a', T);
    expect(s.stream.segmentIds()).toEqual([]);
    expect(s.plan([a2]).load).toEqual([a2]);
  });

  it('knows when the group has committed, on partitions it takes over, events its state lacks', () => {
    const s = new SegmentsEvaluator({ recentMs: 10_000 });
    const batch = [message(event('u1', 'order.placed', T))];
    s.reflected({ topic: 'events', partition: 0, messages: batch });
    const next = batch[0].offset + 1n;
    expect(s.staleFor(new Set([0]), new Map([[0, next]]))).toBe(false);
    expect(s.staleFor(new Set([0]), new Map([[0, next + 5n]]))).toBe(true);
    // Another member's progress on partitions not taken over does not matter.
    expect(s.staleFor(new Set([0]), new Map([[1, 7n]]))).toBe(false);
    s.reflectCommitted(new Map([[0, next + 5n]]));
    expect(s.staleFor(new Set([0]), new Map([[0, next + 5n]]))).toBe(false);
    // Once every segment is to be reloaded, a refresh loads them all again.
    const a = segment('a', { performed: 'order.placed' });
    s.load(a, [], [], T);
    s.markLoaded(a);
    expect(s.plan([a]).load).toEqual([]);
    s.reloadAll();
    expect(s.plan([a]).load).toEqual([a]);
  });
});
