import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportsRoute } from '../api/reports-route.ts';
import { createAuth } from '../core/http/auth.ts';
import { type App, createHttp } from '../core/http/fastify.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { buildLiftQuery, liftRequestSchema } from '../core/reports/lift-query.ts';
import type { Store } from '../core/store/client.ts';
import { T0, ev, insertEvents, openTestStore } from './reports-helpers.ts';

// POST /v1/reports/lift on the real engine, over a small history whose every count is known.

let store: Store;
let close: () => Promise<void>;
let app: App;
const keys = [
  { key: 'analyst-key-0123456789', role: 'analyst' as const },
  { key: 'analyst-b2-key-0123456789', role: 'analyst' as const, businesses: ['b2'] },
];
const ARROW = 'application/vnd.apache.arrow.stream';
const H = 3_600_000;
const D = 24 * H;

const marker = (u: string, t: number, group: 'control' | 'treatment', c = 'c1', b = 'b1') =>
  ev('sponsored.withheld', u, t, { business_id: b, props: { campaign_id: c, group, price_micros: 300_000 } });
const served = (u: string, t: number, c = 'c1', b = 'b1') =>
  ev('sponsored.served', u, t, { business_id: b, props: { campaign_id: c, price_micros: 300_000 } });
const order = (u: string, t: number, value: number, currency = 'EUR', b = 'b1') =>
  ev('order.placed', u, t, { business_id: b, props: { value, currency } });

beforeAll(async () => {
  ({ store, close } = await openTestStore());
  app = await createHttp({
    logger: createLogger({ level: 'silent' }),
    bodyLimit: 1 << 20,
    metrics: createMetrics(),
  });
  await reportsRoute(app, { store, auth: createAuth({ keys }), storedCredits: false });
  await store.client.insert({
    table: `${store.database}.campaigns`,
    values: [
      { id: 'c1', business_id: 'b1', name: 'Old name', status: 'active', spec: '{}', version: 1 },
      { id: 'c1', business_id: 'b1', name: 'Spring cut', status: 'active', spec: '{}', version: 2 },
    ].map((c) => ({ ...c, created_at: '2026-03-01 00:00:00', updated_at: '2026-03-01 00:00:00' })),
    format: 'JSONEachRow',
  });
  await insertEvents(store, [
    // Treatment: t1 converts twice in the window (EUR 40 and USD 10) after a served offer.
    marker('t1', H, 'treatment'),
    served('t1', H + 1000),
    order('t1', 2 * H, 40),
    order('t1', 3 * H, 10, 'USD'),
    // t2: a later marker does not move the first; its order 8 days later is outside the window.
    marker('t2', 2 * H, 'treatment'),
    marker('t2', 3 * D, 'treatment'),
    order('t2', 2 * H + 8 * D, 99),
    // t3: ordered before the offer (the regular), and at the very moment of it: neither counts.
    order('t3', 2 * H, 25),
    marker('t3', 4 * H, 'treatment'),
    order('t3', 4 * H, 25),
    // t4: first marker before the range: not in the analysis at all.
    marker('t4', -2 * D, 'treatment'),
    order('t4', 5 * H, 70),
    // Control: k1 converts (a booking without currency), k2 does not.
    marker('k1', H, 'control'),
    ev('appointment.booked', 'k1', 5 * H, { props: { value: 30 } }),
    marker('k2', 2 * H, 'control'),
    // A marker without a group is a ghost offer: control.
    ev('sponsored.withheld', 'k3', 3 * H, { props: { campaign_id: 'c1' } }),
    // Another campaign of another business.
    marker('x1', H, 'control', 'c9', 'b2'),
    marker('x2', H, 'treatment', 'c9', 'b2'),
    order('x2', 2 * H, 5, 'GBP', 'b2'),
  ]);
});
afterAll(async () => {
  await app?.close();
  await close();
});

const range = { from: new Date(T0).toISOString(), to: new Date(T0 + 2 * D).toISOString() };
const post = (body: unknown, accept?: string, key = keys[0].key) =>
  app.inject({
    method: 'POST',
    url: '/v1/reports/lift',
    payload: body as object,
    headers: { authorization: `Bearer ${key}`, ...(accept ? { accept } : {}) },
  });

describe('POST /v1/reports/lift', () => {
  it('counts users by their first would-be offer and conversions in the window after it', async () => {
    const res = await post({ campaign_id: 'c1', ...range });
    expect(res.statusCode).toBe(200);
    const [c] = res.json().campaigns;
    expect(c).toMatchObject({
      campaign_id: 'c1',
      name: 'Spring cut',
      business_id: 'b1',
      control: { users: 3, converted_users: 1, conversions: 1, conversion_rate: 1 / 3 },
      treatment: { users: 3, converted_users: 1, conversions: 2 },
      served: 1,
      cost_micros: 300_000,
      verdict: 'too_small',
    });
    expect(c.absolute_lift.estimate).toBeCloseTo(0, 12);
    expect(c.relative_lift.estimate).toBeCloseTo(0, 12);
    // Value per currency, never summed: EUR 40 and USD 10 in treatment, 30 without currency in control.
    expect(c.value.map((v: { currency: string }) => v.currency)).toEqual(['', 'EUR', 'USD']);
    expect(c.value[1]).toMatchObject({ control_per_user: 0, treatment_per_user: 40 / 3 });
    expect(c.value[0]).toMatchObject({ control_per_user: 10, treatment_per_user: 0 });
    // Last touch credits t1's two orders (view within a day) and nothing else.
    expect(c.last_touch_conversions).toBe(2);
    expect(c.summary).toMatch(/^Too few users to conclude/);
    // The bootstrap is seeded: the same data gives the same answer.
    expect((await post({ campaign_id: 'c1', ...range })).json().campaigns[0]).toEqual(c);
    expect(c.minimum_detectable_effect.absolute).toBeGreaterThan(0.5);
  });

  it('gives every campaign of a business, only to keys that may read it', async () => {
    const all = (await post({ business_id: 'b2', ...range })).json().campaigns;
    expect(all.map((c: { campaign_id: string }) => c.campaign_id)).toEqual(['c9']);
    expect(all[0].name).toBeNull();
    const limited = await post({ campaign_id: 'c1', ...range }, undefined, keys[1].key);
    expect(limited.json().campaigns).toEqual([]);
    expect((await post({ business_id: 'b1', ...range }, undefined, keys[1].key)).statusCode).toBe(403);
  });

  it('answers the same as CSV and as an Arrow stream', async () => {
    const json = (await post({ campaign_id: 'c1', ...range })).json().campaigns[0];
    const arrow = await post({ campaign_id: 'c1', ...range }, ARROW);
    expect(arrow.headers['content-type']).toBe(ARROW);
    const rows = tableFromIPC(new Uint8Array(arrow.rawPayload)).toArray();
    expect(rows.map((r) => r.currency)).toEqual(['', 'EUR', 'USD']);
    expect(rows[1].treatment_users).toBe(3);
    expect(rows[1].incremental_value).toBeCloseTo(json.value[1].incremental_value.estimate, 9);
    expect(rows[1].absolute_lift_low).toBeCloseTo(json.absolute_lift.low, 9);
    const csv = await post({ campaign_id: 'c1', ...range }, 'text/csv');
    const lines = csv.body.trim().split('\r\n');
    expect(lines).toHaveLength(4);
    expect(lines[0].split(',').slice(0, 4)).toEqual(['campaign_id', 'name', 'business_id', 'control_users']);
    expect(lines[1]).toMatch(/^c1,Spring cut,b1,3,1,1,0.333\d+,3,1,2,/);
  });

  it('rejects bad requests with 400', async () => {
    for (const body of [
      { ...range },
      { campaign_id: 'c1', ...range, window_seconds: 0 },
      { campaign_id: 'c1', ...range, extra: 1 },
      { campaign_id: 'c1', ...range, conversion_types: ['message.received'] },
    ]) {
      const res = await post(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error).toBe('PARLEY_ERR_VALIDATION');
    }
    const backwards = await post({ campaign_id: 'c1', from: range.to, to: range.from });
    expect(backwards.statusCode).toBe(400);
    expect(backwards.json().message).toMatch(/before/);
  });

  it('binds every request value as a parameter', () => {
    const EVIL = "x'); DROP TABLE parley.events; --";
    const q = buildLiftQuery(
      'parley',
      liftRequestSchema.parse({ campaign_id: EVIL, business_id: EVIL, ...range }),
      [EVIL],
    );
    expect(q.query).not.toContain(EVIL);
    expect(q.query_params).toMatchObject({ campaign_id: EVIL, business_id: EVIL, window: 604_800_000 });
  });

  it('is in the OpenAPI document with its answer described', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const op = doc.paths['/v1/reports/lift'].post;
    expect(op.requestBody.content['application/json'].schema).toBeDefined();
    expect(JSON.stringify(doc)).toContain('Katz log interval');
    const ok = op.responses['200'];
    expect(ok.description).toMatch(/lift of each campaign/);
    expect(Object.keys(ok.content)).toEqual(['application/json', 'text/csv', ARROW]);
    expect(doc.components.schemas.LiftReport.example.campaigns[0].verdict).toBe('lift');
    expect(doc.components.schemas.LiftRequestInput.example.window_seconds).toBe(604_800);
  });
});
