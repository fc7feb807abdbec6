import { describe, expect, it } from 'vitest';
import { compileRule, type Rule } from './rule.ts';
import { StreamingEvaluator, type StreamEvent } from './stream.ts';

const T = Date.parse('2026-03-10T12:00:00.000Z');
let n = 0;
const ev = (user: string, type: string, ms: number, extra: Partial<StreamEvent> = {}): StreamEvent => ({
  event_id: `e${++n}`,
  type,
  business_id: 'b1',
  user_id: user,
  channel: 'sms',
  props: {},
  ms,
  ...extra,
});

function evaluator(rule: Rule, businessId?: string) {
  const s = new StreamingEvaluator();
  s.load({ id: 's', businessId, rule: compileRule(rule), version: 1 }, [], [], T - 1_000_000);
  return s;
}
const brief = (changes: { userId: string; member: boolean; atMs: number }[]) =>
  changes.map((c) => `${c.member ? '+' : '-'}${c.userId}@${c.atMs - T}`);

describe('StreamingEvaluator', () => {
  it('exits exactly when the window passes: counted at T − W + 1 ms, not at T − W', () => {
    const s = evaluator({ performed: 'message.received', within_seconds: 10 });
    expect(brief(s.ingest(ev('u', 'message.received', T), T))).toEqual(['+u@0']);
    expect(s.nextDueMs()).toBe(T + 10_000);
    expect(s.advance(T + 9_999)).toEqual([]);
    expect(brief(s.advance(T + 10_000))).toEqual(['-u@10000']);
    expect(s.members('s')).toEqual([]);
  });

  it('a future event enters the user when its time comes', () => {
    const s = evaluator({ performed: 'order.placed' });
    expect(s.ingest(ev('u', 'order.placed', T + 5_000), T)).toEqual([]);
    expect(brief(s.advance(T + 5_000))).toEqual(['+u@5000']);
  });

  it('duplicates and replays change nothing; late events count as if in order', () => {
    const s = evaluator({ performed: 'message.received', count: { gte: 2 }, within_seconds: 60 });
    const a = ev('u', 'message.received', T - 30_000);
    expect(s.ingest(a, T)).toEqual([]);
    expect(s.ingest(a, T)).toEqual([]);
    expect(s.ingest({ ...a }, T + 1)).toEqual([]);
    expect(brief(s.ingest(ev('u', 'message.received', T - 50_000), T + 2))).toEqual(['+u@-30000']); // late, still in window: in since the second message
    expect(brief(s.advance(T + 10_000))).toEqual(['-u@10000']); // the late one (T − 50 s) left at T + 10 s
  });

  it('not is over the universe, which a user joins with any in-scope event', () => {
    const s = evaluator({ not: { performed: 'order.placed' } }, 'b1');
    expect(s.ingest(ev('u', 'message.received', T, { business_id: 'b2' }), T)).toEqual([]); // out of scope
    expect(brief(s.ingest(ev('u', 'message.received', T), T))).toEqual(['+u@0']);
    expect(brief(s.ingest(ev('u', 'order.placed', T - 1), T))).toEqual(['-u@0']);
  });

  it('forgets events that left every window, and a replay of one stays uncounted', () => {
    const s = evaluator({ performed: 'message.received', within_seconds: 1 });
    const old = ev('u', 'message.received', T);
    s.ingest(old, T);
    s.advance(T + 5_000);
    expect(s.ingest(old, T + 6_000)).toEqual([]);
    expect(s.members('s')).toEqual([]);
  });

  it('load announces the difference with what was published, and remove exits everyone', () => {
    const s = new StreamingEvaluator();
    const def = { id: 's', rule: compileRule({ performed: 'optin' }), version: 1 };
    const changes = s.load(
      def,
      [
        { userId: 'a', firstMs: T - 5, events: [['x', T - 5, 1]] },
        { userId: 'b', firstMs: T - 5, events: [] },
      ],
      ['b', 'gone'],
      T,
    );
    expect(brief(changes).sort()).toEqual(['+a@-5', '-b@0', '-gone@0']);
    expect(brief(s.remove('s', T + 1))).toEqual(['-a@1']);
    expect(s.segment('s')).toBeUndefined();
  });

  it('resync re-announces where stored membership disagrees, without changing its own view', () => {
    const s = evaluator({ performed: 'optin' });
    s.ingest(ev('a', 'optin', T), T);
    s.ingest(ev('b', 'message.received', T), T);
    expect(brief(s.resync('s', new Set(['b', 'x']), T + 1)).sort()).toEqual(['+a@0', '-b@1', '-x@1']);
    expect(s.members('s')).toEqual(['a']);
    expect(s.resync('s', new Set(['a']), T + 2)).toEqual([]);
  });

  it('dates changes by event time: the third of three, the end of a blocking window, never before the last change', () => {
    const three = evaluator({ performed: 'message.received', count: { gte: 3 }, within_seconds: 60 });
    three.ingest(ev('u', 'message.received', T - 40_000), T);
    three.ingest(ev('u', 'message.received', T - 30_000), T);
    expect(brief(three.ingest(ev('u', 'message.received', T - 20_000), T + 5))).toEqual(['+u@-20000']);
    expect(brief(three.advance(T + 20_000))).toEqual(['-u@20000']); // the first left its window

    const noOrder = evaluator({ not: { performed: 'order.placed', within_seconds: 10 } });
    expect(brief(noOrder.ingest(ev('u', 'message.received', T - 50_000), T))).toEqual(['+u@-50000']);
    expect(brief(noOrder.ingest(ev('u', 'order.placed', T - 3_000), T))).toEqual(['-u@-3000']);
    expect(brief(noOrder.advance(T + 7_500))).toEqual(['+u@7000']); // the order's window closed at T + 7 s

    // A late event that would bridge the gap does not move the stay before the announced exit.
    const either = evaluator({ any: [{ not: { performed: 'optout' } }, { performed: 'optin' }] });
    expect(brief(either.ingest(ev('u', 'message.received', T - 10_000), T))).toEqual(['+u@-10000']);
    expect(brief(either.ingest(ev('u', 'optout', T), T))).toEqual(['-u@0']);
    expect(brief(either.ingest(ev('u', 'optin', T - 20_000), T + 1))).toEqual(['+u@0']);
  });
});
