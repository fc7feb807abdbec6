import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AttributionRow,
  attributionAnswer,
  attributionRequestSchema,
  buildAttributionQuery,
} from '../core/reports/attribution.ts';
import { MODELS, type Model, type RefEvent, referenceAttribution } from '../core/reports/reference.ts';
import type { Store } from '../core/store/client.ts';
import { T0, ev, insertEvents, openTestStore, queryRows } from './reports-helpers.ts';

let store: Store;
let close: () => Promise<void>;
beforeAll(async () => ({ store, close } = await openTestStore()));
afterAll(() => close());

let biz = 0;
type Answer = ReturnType<typeof attributionAnswer>;
/** Inserts under a fresh business, runs the SQL path and the reference; they must agree. */
async function run(
  events: RefEvent[],
  req: Record<string, unknown>,
  inserts?: RefEvent[][],
): Promise<Answer> {
  const b = `ab${++biz}`;
  const rename = (e: RefEvent) => ({
    ...e,
    business_id: e.business_id === 'b1' ? b : `${b}_${e.business_id}`,
  });
  for (const part of inserts ?? [events]) await insertEvents(store, part.map(rename));
  const r = attributionRequestSchema.parse({
    from: new Date(T0 - 86_400_000).toISOString(),
    to: new Date(T0 + 86_400_000).toISOString(),
    ...req,
    business_id: b,
  });
  const sql = attributionAnswer(
    r.model,
    await queryRows<AttributionRow>(store, buildAttributionQuery(store.database, r)),
  );
  const ref = referenceAttribution(events.map(rename), r);
  expect(round(sql)).toEqual(round(ref));
  return round(sql);
}
const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
const r6each = (m: Record<string, number>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, r6(v)]));
/** A campaign's row in a report without campaign names stored. */
const row = (campaign_id: string, conversions: number, value: number, currency = 'XXX') => ({
  campaign_id,
  campaign_name: null,
  conversions,
  value_by_currency: { [currency]: value },
});
function round(a: Answer): Answer {
  return {
    ...a,
    rows: a.rows.map((r) => ({
      ...r,
      conversions: r6(r.conversions),
      value_by_currency: r6each(r.value_by_currency),
    })),
    unattributed: {
      conversions: r6(a.unattributed.conversions),
      value_by_currency: r6each(a.unattributed.value_by_currency),
    },
  };
}
const H = 3_600_000;
const click = (u: string, t: number, campaign: string, more: Partial<RefEvent> = {}) =>
  ev('sponsored.clicked', u, t, { props: { campaign_id: campaign }, ...more });
const view = (u: string, t: number, campaign: string, more: Partial<RefEvent> = {}) =>
  ev('sponsored.served', u, t, { props: { campaign_id: campaign, price_micros: 1000 }, ...more });
const order = (u: string, t: number, value: number, more: Partial<RefEvent> = {}) =>
  ev('order.placed', u, t, { props: { value }, ...more });
const split = (a: Answer) => Object.fromEntries(a.rows.map((r) => [r.campaign_id, r.conversions]));

describe('attribution models split one conversion', () => {
  const five = () => [
    click('u', 0, 'c1'),
    click('u', H, 'c2'),
    click('u', 2 * H, 'c3'),
    click('u', 3 * H, 'c4'),
    click('u', 4 * H, 'c5'),
    order('u', 5 * H, 100),
  ];
  const expected: Record<Model, [Record<string, number>, Record<string, number>, Record<string, number>]> = {
    last_touch: [{ c1: 1 }, { c2: 1 }, { c5: 1 }],
    first_touch: [{ c1: 1 }, { c1: 1 }, { c1: 1 }],
    linear: [{ c1: 1 }, { c1: 0.5, c2: 0.5 }, { c1: 0.2, c2: 0.2, c3: 0.2, c4: 0.2, c5: 0.2 }],
    // Half-life one hour (below): each touch an hour older weighs half as much.
    time_decay: [
      { c1: 1 },
      { c1: r6(1 / 3), c2: r6(2 / 3) },
      { c1: r6(1 / 31), c2: r6(2 / 31), c3: r6(4 / 31), c4: r6(8 / 31), c5: r6(16 / 31) },
    ],
    position_based: [
      { c1: 1 },
      { c1: 0.5, c2: 0.5 },
      { c1: 0.4, c2: r6(0.2 / 3), c3: r6(0.2 / 3), c4: r6(0.2 / 3), c5: 0.4 },
    ],
  };
  it.each(MODELS)('%s over 1, 2 and 5 touchpoints', async (model) => {
    const req = { model, half_life_seconds: 3600 };
    const one = await run([click('u', 0, 'c1'), order('u', H, 50)], req);
    const two = await run([click('u', 0, 'c1'), click('u', H, 'c2'), order('u', 2 * H, 50)], req);
    const fiveA = await run(five(), req);
    expect([split(one), split(two), split(fiveA)]).toEqual(expected[model]);
    expect(fiveA.rows.reduce((s, r) => s + r.value_by_currency.XXX, 0)).toBeCloseTo(100, 4);
  });
});

describe('attribution touchpoints', () => {
  it('clicks take precedence over views; views count when there is no click', async () => {
    const a = await run(
      [
        view('u1', 0, 'v1'),
        click('u1', 10, 'k1'),
        view('u1', 20, 'v2'),
        order('u1', 30, 10),
        view('u2', 0, 'v1'),
        order('u2', 30, 20),
      ],
      { model: 'linear' },
    );
    expect(a.rows).toEqual([row('k1', 1, 10), row('v1', 1, 20)]);
  });

  it('window edges: a touch exactly click_window before counts, one ms earlier or at the conversion does not', async () => {
    const a = await run(
      [click('u1', 0, 'in'), click('u1', -1, 'out'), click('u1', 7_000, 'same'), order('u1', 7_000, 1)],
      { model: 'linear', click_window_seconds: 7 },
    );
    expect(split(a)).toEqual({ in: 1 });
    const v = await run([view('u1', 0, 'in'), view('u1', -1, 'out'), order('u1', 86_400_000, 1)], {
      model: 'linear',
      to: new Date(T0 + 2 * 86_400_000).toISOString(),
    });
    expect(split(v)).toEqual({ in: 1 });
  });

  it('a conversion with no touchpoint is unattributed with its value; a lead without value is worth 0', async () => {
    const a = await run(
      [
        order('u1', 0, 42),
        ev('lead.submitted', 'u2', 0),
        click('u3', 0, 'c'),
        ev('appointment.booked', 'u3', 10, { props: { value: 7 } }),
      ],
      { model: 'last_touch' },
    );
    expect(a.unattributed).toEqual({ conversions: 2, value_by_currency: { XXX: 42 } });
    expect(a.rows).toEqual([row('c', 1, 7)]);
  });

  it('never counts a duplicated conversion or touchpoint twice; late touchpoints count the same', async () => {
    const c1 = click('u1', 0, 'a');
    const c2 = click('u1', 10, 'b');
    const o = order('u1', 20, 9);
    const a = await run([o, o, c2, c1, c1], { model: 'linear' }, [[o], [c2, o], [c1], [c1]]);
    expect(a.rows).toEqual([row('a', 0.5, 4.5), row('b', 0.5, 4.5)]);
  });

  it("counts only the converting user's touchpoints in the same business, and conversions in [from, to)", async () => {
    const a = await run(
      [
        click('u2', 0, 'other-user'),
        click('u1', 0, 'other-biz', { business_id: 'x' }),
        order('u1', 10, 1),
        order('u1', 86_400_000, 5),
      ],
      { model: 'linear', to: new Date(T0 + 86_400_000).toISOString() },
    );
    expect(a.rows).toEqual([]);
    expect(a.unattributed).toEqual({ conversions: 1, value_by_currency: { XXX: 1 } });
  });

  it('never sums money across currencies; a conversion without a currency is under XXX', async () => {
    const a = await run(
      [
        click('u1', 0, 'c'),
        order('u1', 10, 10, { props: { value: 10, currency: 'usd' } }),
        click('u2', 0, 'c'),
        order('u2', 10, 20, { props: { value: 20, currency: 'EUR' } }),
        click('u3', 0, 'c'),
        order('u3', 10, 5, { props: { value: 5, currency: ' USD ' } }),
        order('u4', 10, 7, { props: { value: 7, currency: 'BRL' } }),
        order('u5', 10, 3),
        order('u6', 10, 4, { props: { value: 4, currency: 'GBP' } }),
      ],
      { model: 'last_touch' },
    );
    expect(a.rows).toEqual([
      { campaign_id: 'c', campaign_name: null, conversions: 3, value_by_currency: { EUR: 20, USD: 15 } },
    ]);
    expect(a.unattributed).toEqual({ conversions: 3, value_by_currency: { BRL: 7, GBP: 4, XXX: 3 } });
  });
});

describe('attribution SQL equals the reference on random histories', () => {
  const kinds = [
    'sponsored.served',
    'sponsored.clicked',
    'order.placed',
    'lead.submitted',
    'message.received',
  ];
  const event = fc.record({
    kind: fc.integer({ min: 0, max: 4 }),
    user: fc.integer({ min: 0, max: 2 }),
    t: fc.integer({ min: 0, max: 30 }),
    campaign: fc.constantFrom('c1', 'c2', 'c3'),
    value: fc.integer({ min: 0, max: 100 }),
    dup: fc.boolean(),
    currency: fc.constantFrom('', 'USD', 'eur'),
  });
  it('for every model and random windows', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(event, { maxLength: 16 }),
        fc.constantFrom(...MODELS),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 20 }),
        async (raw, model, cw, vw) => {
          const evs = raw.map((r) => {
            const type = kinds[r.kind];
            const props = type.startsWith('sponsored')
              ? { campaign_id: r.campaign }
              : type === 'order.placed'
                ? { value: r.value, ...(r.currency ? { currency: r.currency } : {}) }
                : {};
            return ev(type, `u${r.user}`, r.t * 1000, { props });
          });
          await run([...evs, ...evs.filter((_, i) => raw[i].dup)], {
            model,
            click_window_seconds: cw,
            view_window_seconds: vw,
            half_life_seconds: 5,
          });
        },
      ),
      { numRuns: 30 },
    );
  });
});
