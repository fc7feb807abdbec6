import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FunnelRequest,
  type FunnelRow,
  buildFunnelQuery,
  funnelAnswer,
  funnelRequestSchema,
} from '../core/reports/funnel.ts';
import { type RefEvent, referenceFunnel } from '../core/reports/reference.ts';
import type { Store } from '../core/store/client.ts';
import { T0, ev, insertEvents, openTestStore, queryRows } from './reports-helpers.ts';

let store: Store;
let close: () => Promise<void>;
beforeAll(async () => ({ store, close } = await openTestStore()));
afterAll(() => close());

let biz = 0;
/** Inserts the events under a fresh business (so cases never see each other), runs SQL and reference. */
async function run(events: RefEvent[], req: Record<string, unknown>, opts: { inserts?: RefEvent[][] } = {}) {
  const b = `fb${++biz}`;
  const mine = events.map((e) => ({
    ...e,
    business_id: e.business_id === 'b1' ? b : `${b}_${e.business_id}`,
  }));
  for (const part of opts.inserts ?? [mine])
    await insertEvents(
      store,
      part === mine ? mine : part.map((e) => mine.find((m) => m.event_id === e.event_id)!),
    );
  const r: FunnelRequest = funnelRequestSchema.parse({
    window_seconds: 60,
    from: new Date(T0 - 86_400_000).toISOString(),
    to: new Date(T0 + 86_400_000).toISOString(),
    ...req,
    business_id: req.breakdown === 'business_id' ? undefined : b,
  });
  const businesses =
    req.breakdown === 'business_id' ? [...new Set(mine.map((e) => e.business_id))] : undefined;
  const sql = funnelAnswer(
    r,
    await queryRows<FunnelRow>(store, buildFunnelQuery(store.database, r, businesses)),
  );
  const ref = referenceFunnel(mine, r, businesses);
  expect(sql).toEqual(ref);
  return sql as { steps: { type: string; users: number; median_seconds_from_previous: number | null }[] };
}
const users = (a: { steps: { users: number }[] }) => a.steps.map((s) => s.users);
const ABC = [{ type: 'message.received' }, { type: 'sponsored.served' }, { type: 'sponsored.clicked' }];
const [A, B, C] = ABC.map((s) => s.type);

describe('funnel (ordered)', () => {
  it('counts distinct users reaching at least each step, in order', async () => {
    const a = await run(
      [
        ev(A, 'u1', 0),
        ev(B, 'u1', 1000),
        ev(C, 'u1', 3000),
        ev(A, 'u2', 0),
        ev(B, 'u2', 5000),
        ev(B, 'u3', 0),
        ev(A, 'u3', 1000),
        ev(A, 'u4', 0),
        ev(C, 'u4', 1000),
      ],
      { steps: ABC },
    );
    expect(users(a)).toEqual([4, 2, 1]);
    expect(a.steps.map((s) => s.median_seconds_from_previous)).toEqual([null, 3, 2]);
  });

  it('needs strictly later times: equal timestamps do not advance', async () => {
    const a = await run([ev(A, 'u1', 0), ev(B, 'u1', 0), ev(A, 'u2', 0), ev(B, 'u2', 1)], {
      steps: ABC.slice(0, 2),
    });
    expect(users(a)).toEqual([2, 1]);
    expect(a.steps[1].median_seconds_from_previous).toBe(0.001);
  });

  it('includes a step exactly window_seconds after step 1, not one millisecond later', async () => {
    const a = await run([ev(A, 'u1', 0), ev(B, 'u1', 60_000), ev(A, 'u2', 0), ev(B, 'u2', 60_001)], {
      steps: ABC.slice(0, 2),
    });
    expect(users(a)).toEqual([2, 1]);
  });

  it('measures the window from the latest step-1 event that still converts', async () => {
    const a = await run([ev(A, 'u1', 0), ev(A, 'u1', 50_000), ev(B, 'u1', 100_000)], {
      steps: ABC.slice(0, 2),
    });
    expect(users(a)).toEqual([1, 1]);
    expect(a.steps[1].median_seconds_from_previous).toBe(50);
  });

  it('counts only events with from <= occurred_at < to', async () => {
    const a = await run([ev(A, 'u1', 0), ev(B, 'u1', 10_000), ev(A, 'u2', 0), ev(B, 'u2', 9_999)], {
      steps: ABC.slice(0, 2),
      from: new Date(T0).toISOString(),
      to: new Date(T0 + 10_000).toISOString(),
    });
    expect(users(a)).toEqual([2, 1]);
  });

  it('does not double count a duplicated event and is the same for late, out-of-order inserts', async () => {
    const e1 = ev(A, 'u1', 0);
    const e2 = ev(B, 'u1', 1000);
    const e3 = ev(C, 'u1', 2000);
    const a = await run([e1, e2, e3, e2], { steps: ABC }, { inserts: [[e3], [e2], [e1, e2]] });
    expect(users(a)).toEqual([1, 1, 1]);
    expect(a.steps[2].median_seconds_from_previous).toBe(1);
  });

  it('applies where on steps', async () => {
    const a = await run(
      [
        ev(A, 'u1', 0, { channel: 'sms' }),
        ev('order.placed', 'u1', 10, { props: { value: 30 } }),
        ev(A, 'u2', 0),
        ev('order.placed', 'u2', 10, { props: { value: 5 } }),
      ],
      { steps: [{ type: A }, { type: 'order.placed', where: { 'props.value': { gte: 10 } } }] },
    );
    expect(users(a)).toEqual([2, 1]);
  });

  it('applies where with whole numbers beyond 2^53 (1e20 in JSON), as the reference does', async () => {
    const big = [
      ev(A, 'u1', 0),
      ev('order.placed', 'u1', 10, { props: { value: 1e21 } }),
      ev(A, 'u2', 0),
      ev('order.placed', 'u2', 10, { props: { value: 25483741716715910 } }),
    ];
    const step = (where: object) => ({ steps: [{ type: A }, { type: 'order.placed', where }] });
    expect(users(await run(big, step({ 'props.value': { gte: 1e20 } })))).toEqual([2, 1]);
    expect(users(await run(big, step({ 'props.value': { in: [25483741716715910] } })))).toEqual([2, 1]);
  });

  it('breaks down by channel, each value over its own events', async () => {
    const a = (await run(
      [
        ev(A, 'u1', 0, { channel: 'sms' }),
        ev(B, 'u1', 10, { channel: 'whatsapp' }),
        ev(A, 'u2', 0, { channel: 'sms' }),
        ev(B, 'u2', 10, { channel: 'sms' }),
      ],
      { steps: ABC.slice(0, 2), breakdown: 'channel' },
    )) as unknown as { groups: { value: string; steps: { users: number }[] }[] };
    expect(a.groups.map((g) => [g.value, users(g)])).toEqual([['sms', [2, 1]]]);
  });
});

describe('funnel (strict, unordered, exclusions)', () => {
  it('strict: another step event in between breaks the path', async () => {
    const evs = [
      ev(A, 'u1', 0),
      ev(C, 'u1', 1),
      ev(B, 'u1', 2),
      ev(C, 'u1', 3),
      ev(A, 'u2', 0),
      ev(B, 'u2', 1),
      ev(C, 'u2', 2),
    ];
    expect(users(await run(evs, { steps: ABC }))).toEqual([2, 2, 2]);
    expect(users(await run(evs, { steps: ABC, mode: 'strict' }))).toEqual([2, 1, 1]);
  });

  it('unordered: steps in any order within the window', async () => {
    const a = await run(
      [
        ev(B, 'u1', 0),
        ev(A, 'u1', 5000),
        ev(C, 'u2', 0),
        ev(A, 'u2', 61_000),
        ev(B, 'u2', 62_000),
        ev(C, 'u3', 0),
        ev(B, 'u3', 30_000),
        ev(A, 'u3', 60_000),
      ],
      { steps: ABC, mode: 'unordered' },
    );
    expect(users(a)).toEqual([3, 3, 1]);
    // u1 has A and B together at 5 s; u2 at 62 s (1 s after A); u3 all three at 60 s.
    expect(a.steps.map((s) => s.median_seconds_from_previous)).toEqual([null, 0, 0]);
  });

  it('exclusions: an excluded event between steps i and j stops the path until step i is done again', async () => {
    const X = 'conversation.blocked';
    const ex = [{ type: X, between: [1, 2] }];
    const a = await run(
      [
        ev(A, 'u1', 0),
        ev(X, 'u1', 1),
        ev(B, 'u1', 2),
        ev(A, 'u2', 0),
        ev(X, 'u2', 1),
        ev(A, 'u2', 2),
        ev(B, 'u2', 3),
        ev(A, 'u3', 0),
        ev(X, 'u3', 0),
        ev(B, 'u3', 1),
      ],
      { steps: ABC.slice(0, 2), exclusions: ex },
    );
    expect(users(a)).toEqual([3, 2]);
  });

  it('rejects exclusions that do not name two steps in order', () => {
    const r = funnelRequestSchema.parse({
      steps: ABC,
      window_seconds: 1,
      from: '2026-01-01T00:00:00Z',
      to: '2026-01-02T00:00:00Z',
      exclusions: [{ type: A, between: [2, 2] }],
    });
    expect(() => buildFunnelQuery('parley', r)).toThrow(/between/);
  });
});

describe('funnel time to convert', () => {
  /** The SQL answer with time_to_convert asked for, over the events of a fresh business. */
  async function ttc(events: RefEvent[], req: Record<string, unknown>) {
    const b = `ttc${++biz}`;
    await insertEvents(
      store,
      events.map((e) => ({ ...e, business_id: b })),
    );
    const r = funnelRequestSchema.parse({
      window_seconds: 3600,
      from: new Date(T0 - 86_400_000).toISOString(),
      to: new Date(T0 + 86_400_000).toISOString(),
      time_to_convert: true,
      ...req,
      business_id: b,
    });
    return funnelAnswer(r, await queryRows<FunnelRow>(store, buildFunnelQuery(store.database, r)));
  }

  it('counts users who reached the last step by seconds from the first step, on the path that converted', async () => {
    const a = await ttc(
      [
        ...[ev(A, 'u1', 0), ev(B, 'u1', 1000), ev(C, 'u1', 3000)],
        ...[ev(A, 'u2', 0), ev(B, 'u2', 20_000), ev(C, 'u2', 30_000)],
        // The window is measured from the latest step-1 event that still converts: 300 s.
        ...[ev(A, 'u3', 0), ev(A, 'u3', 100_000), ev(B, 'u3', 200_000), ev(C, 'u3', 400_000)],
        ...[ev(A, 'u4', 0), ev(B, 'u4', 1000)],
      ],
      { steps: ABC },
    );
    expect(a.steps?.map((s) => s.users)).toEqual([4, 4, 3]);
    expect(a.time_to_convert).toEqual({
      median_seconds: 30,
      buckets: [
        { from_seconds: 0, to_seconds: 10, users: 1 },
        { from_seconds: 10, to_seconds: 60, users: 1 },
        { from_seconds: 60, to_seconds: 300, users: 0 },
        { from_seconds: 300, to_seconds: 900, users: 1 },
        { from_seconds: 900, to_seconds: 3600, users: 0 },
      ],
    });
  });

  it('unordered: from the earliest step covering the last one; none converted: no median', async () => {
    const a = await ttc([ev(C, 'u1', 0), ev(A, 'u1', 5000), ev(B, 'u1', 8000)], {
      steps: ABC,
      mode: 'unordered',
      window_seconds: 60,
    });
    expect(a.time_to_convert).toEqual({
      median_seconds: 8,
      buckets: [
        { from_seconds: 0, to_seconds: 10, users: 1 },
        { from_seconds: 10, to_seconds: 60, users: 0 },
      ],
    });
    const none = await ttc([ev(A, 'u1', 0)], { steps: ABC, breakdown: 'channel' });
    expect(none.groups?.[0].time_to_convert?.median_seconds).toBeNull();
    expect(none.groups?.[0].time_to_convert?.buckets.every((x) => x.users === 0)).toBe(true);
  });

  it('is only answered when asked for', async () => {
    const a = await ttc([ev(A, 'u1', 0), ev(B, 'u1', 1), ev(C, 'u1', 2)], {
      steps: ABC,
      time_to_convert: false,
    });
    expect(a).not.toHaveProperty('time_to_convert');
  });
});

describe('funnel SQL equals the reference on random histories', () => {
  const types = [A, B, C];
  const event = fc.record({
    type: fc.integer({ min: 0, max: 3 }),
    user: fc.integer({ min: 0, max: 3 }),
    t: fc.integer({ min: 0, max: 40 }),
    channel: fc.constantFrom('sms', 'whatsapp'),
    dup: fc.boolean(),
  });
  it.each(['ordered', 'strict', 'unordered'] as const)('%s', async (mode) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(event, { maxLength: 14 }),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 2, maxLength: 4 }),
        fc.integer({ min: 1, max: 20 }),
        // Up to two exclusions, each between random steps i < j (picked from 0..9 modulo the steps).
        fc.array(fc.tuple(fc.nat(9), fc.nat(9), fc.constantFrom('conversation.blocked', types[0])), {
          maxLength: 2,
        }),
        fc.constantFrom('plain', 'breakdown', 'where'),
        async (raw, stepIdx, window, excluded, shape) => {
          const evs = raw.map((r) =>
            ev(r.type === 3 ? 'conversation.blocked' : types[r.type], `u${r.user}`, r.t * 1000, {
              channel: r.channel,
            }),
          );
          const withDups = [...evs, ...evs.filter((_, i) => raw[i].dup)];
          const n = stepIdx.length;
          const exclusions =
            mode === 'unordered'
              ? []
              : excluded.map(([a, b, type]) => {
                  const i = 1 + (a % (n - 1));
                  return { type, between: [i, i + 1 + (b % (n - i))] };
                });
          // Sometimes broken down by channel, sometimes with a where on step 2.
          const where = (k: number) => (shape === 'where' && k === 1 ? { where: { channel: 'sms' } } : {});
          await run(withDups, {
            steps: stepIdx.map((i, k) => ({ type: types[i], ...where(k) })),
            window_seconds: window,
            mode,
            exclusions,
            ...(shape === 'breakdown' ? { breakdown: 'channel' } : {}),
          });
        },
      ),
      { numRuns: 25 },
    );
  });
});
