import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsReadRoute } from '../api/events-route.ts';
import { reportsRoute } from '../api/reports-route.ts';
import { createAuth } from '../core/http/auth.ts';
import { type App, createHttp } from '../core/http/fastify.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';
import { T0, ev, insertEvents, openTestStore } from './reports-helpers.ts';

let store: Store;
let close: () => Promise<void>;
let app: App;
const keys = [
  { key: 'analyst-key-0123456789', role: 'analyst' as const },
  { key: 'analyst-b2-key-0123456789', role: 'analyst' as const, businesses: ['b2'] },
  { key: 'marketer-key-0123456789', role: 'marketer' as const },
];
const ARROW = 'application/vnd.apache.arrow.stream';
const H = 3_600_000;

beforeAll(async () => {
  ({ store, close } = await openTestStore());
  const auth = createAuth({ keys });
  app = await createHttp({
    logger: createLogger({ level: 'silent' }),
    bodyLimit: 1 << 20,
    metrics: createMetrics(),
  });
  await reportsRoute(app, { store, auth, storedCredits: false });
  await eventsReadRoute(app, { store, auth });
  const served = (u: string, t: number, c: string, b = 'b1') =>
    ev('sponsored.served', u, t, { business_id: b, props: { campaign_id: c, price_micros: 250_000 } });
  const clicked = (u: string, t: number, c: string, b = 'b1') =>
    ev('sponsored.clicked', u, t, { business_id: b, props: { campaign_id: c } });
  await insertEvents(store, [
    ev('message.received', 'u1', 0, { channel: 'sms', props: { keywords: ['cut', 'beard'] } }),
    served('u1', H, 'c1'),
    clicked('u1', 2 * H, 'c1'),
    ev('order.placed', 'u1', 3 * H, { props: { value: 40, currency: 'USD' } }),
    ev('message.received', 'u2', 0),
    served('u2', H, 'c2'),
    served('u2', 2 * H, 'c1'),
    ev('lead.submitted', 'u2', 3 * H, { props: { value: 10 } }),
    ev('order.placed', 'u3', 3 * H, { props: { value: 5, currency: 'eur' } }),
    ev('message.received', 'u9', 0, { business_id: 'b2' }),
    served('u9', H, 'c9', 'b2'),
    ev('order.placed', 'u9', 2 * H, { business_id: 'b2', props: { value: 7, currency: 'USD' } }),
  ]);
  // Reports name campaigns next to their ids (an analyst key cannot read /v1/campaigns).
  await store.client.insert({
    table: `${store.database}.campaigns`,
    values: [
      {
        id: 'c1',
        business_id: 'b1',
        name: 'Spring sale',
        status: 'active',
        spec: '{}',
        version: 1,
        created_at: new Date(T0).toISOString(),
        updated_at: new Date(T0).toISOString(),
      },
    ],
    format: 'JSONEachRow',
  });
});
afterAll(async () => {
  await app?.close();
  await close();
});

const range = { from: new Date(T0 - H).toISOString(), to: new Date(T0 + 10 * H).toISOString() };
const funnel = {
  steps: [{ type: 'message.received' }, { type: 'sponsored.served' }, { type: 'order.placed' }],
  window_seconds: 86_400,
  ...range,
};
const post = (url: string, body: unknown, accept?: string, key = keys[0].key) =>
  app.inject({
    method: 'POST',
    url,
    payload: body as object,
    headers: { authorization: `Bearer ${key}`, ...(accept ? { accept } : {}) },
  });
const get = (url: string, accept?: string, key = keys[0].key) =>
  app.inject({
    method: 'GET',
    url,
    headers: { authorization: `Bearer ${key}`, ...(accept ? { accept } : {}) },
  });
const arrowRows = (body: Buffer) =>
  tableFromIPC(new Uint8Array(body))
    .toArray()
    .map((r) =>
      Object.fromEntries(
        Object.entries(r.toJSON()).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v]),
      ),
    );

describe('POST /v1/reports/funnel', () => {
  it('answers JSON with users and median time per step', async () => {
    const res = await post('/v1/reports/funnel', funnel);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      steps: [
        { type: 'message.received', users: 3, median_seconds_from_previous: null },
        { type: 'sponsored.served', users: 3, median_seconds_from_previous: 3600 },
        // u1 orders 2 h after being served, u9 1 h after; u2 only submits a lead.
        { type: 'order.placed', users: 2, median_seconds_from_previous: 5400 },
      ],
    });
  });

  it('answers the same as an Arrow stream and as CSV', async () => {
    const body = { ...funnel, breakdown: 'channel' };
    const json = (await post('/v1/reports/funnel', body)).json() as {
      groups: {
        value: string;
        steps: { type: string; users: number; median_seconds_from_previous: number | null }[];
      }[];
    };
    const res = await post('/v1/reports/funnel', body, ARROW);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(ARROW);
    const flat = json.groups.flatMap((g) => g.steps.map((s, i) => ({ value: g.value, step: i + 1, ...s })));
    expect(flat.length).toBeGreaterThan(0);
    expect(arrowRows(res.rawPayload)).toEqual(flat);
    const csv = await post('/v1/reports/funnel', body, 'text/csv');
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const lines = csv.body.trim().split('\r\n');
    expect(lines[0]).toBe('value,step,type,users,median_seconds_from_previous');
    expect(lines.slice(1)).toEqual(
      flat.map((r) => [r.value, r.step, r.type, r.users, r.median_seconds_from_previous ?? ''].join(',')),
    );
  });

  it('limits a business-limited key to its businesses', async () => {
    const mine = await post('/v1/reports/funnel', funnel, undefined, keys[1].key);
    expect((mine.json() as { steps: { users: number }[] }).steps.map((s) => s.users)).toEqual([1, 1, 1]);
    const other = await post('/v1/reports/funnel', { ...funnel, business_id: 'b1' }, undefined, keys[1].key);
    expect(other.statusCode).toBe(403);
    expect(other.json().error).toBe('PARLEY_ERR_FORBIDDEN');
  });

  it('rejects bad input, other roles and unsupported Accept types', async () => {
    expect(
      (await post('/v1/reports/funnel', { ...funnel, steps: [{ type: 'message.received' }] })).statusCode,
    ).toBe(400);
    expect(
      (
        await post('/v1/reports/funnel', {
          ...funnel,
          steps: [
            { type: 'message.received', where: { 'props.x': { between: 1 } } },
            { type: 'order.placed' },
          ],
        })
      ).statusCode,
    ).toBe(400);
    expect(
      (await post('/v1/reports/funnel', { ...funnel, from: range.to, to: range.from })).json().error,
    ).toBe('PARLEY_ERR_VALIDATION');
    expect((await post('/v1/reports/funnel', funnel, undefined, keys[2].key)).statusCode).toBe(403);
    expect(
      (await app.inject({ method: 'POST', url: '/v1/reports/funnel', payload: funnel })).statusCode,
    ).toBe(401);
    const res = await post('/v1/reports/funnel', funnel, 'text/html');
    expect(res.statusCode).toBe(406);
    expect(res.json().error).toBe('PARLEY_ERR_NOT_ACCEPTABLE');
  });

  it('applies where on array props', async () => {
    const res = await post('/v1/reports/funnel', {
      ...funnel,
      steps: [{ type: 'message.received', where: { 'props.keywords': 'beard' } }, { type: 'order.placed' }],
    });
    expect((res.json() as { steps: { users: number }[] }).steps.map((s) => s.users)).toEqual([1, 1]);
  });
});

describe('POST /v1/reports/attribution and GET /v1/reports/campaigns', () => {
  it('attribution: JSON, and the same rows streamed as Arrow', async () => {
    const body = { model: 'linear', ...range };
    const json = (await post('/v1/reports/attribution', body)).json();
    // Money per currency, never summed across currencies; the lead without one is under XXX.
    expect(json).toEqual({
      model: 'linear',
      rows: [
        {
          campaign_id: 'c1',
          campaign_name: 'Spring sale',
          conversions: 1.5,
          value_by_currency: { USD: 40, XXX: 5 },
        },
        { campaign_id: 'c2', campaign_name: null, conversions: 0.5, value_by_currency: { XXX: 5 } },
        { campaign_id: 'c9', campaign_name: null, conversions: 1, value_by_currency: { USD: 7 } },
      ],
      unattributed: { conversions: 1, value_by_currency: { EUR: 5 } },
    });
    const res = await post('/v1/reports/attribution', body, ARROW);
    expect(res.statusCode).toBe(200);
    const row = (
      campaign_id: string,
      campaign_name: string | null,
      currency: string,
      conversions: number,
      value: number,
    ) => ({
      campaign_id,
      campaign_name,
      currency,
      conversions,
      value,
    });
    expect(arrowRows(res.rawPayload)).toEqual([
      row('', null, 'EUR', 1, 5),
      row('c1', 'Spring sale', 'USD', 1, 40),
      row('c1', 'Spring sale', 'XXX', 0.5, 5),
      row('c2', null, 'XXX', 0.5, 5),
      row('c9', null, 'USD', 1, 7),
    ]);
  });

  it('attribution/models: every model in one statement, each as the single-model report; CSV carries the model', async () => {
    const MODELS = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based'];
    const res = await post('/v1/reports/attribution/models', range);
    expect(res.statusCode).toBe(200);
    const singles = [];
    for (const model of MODELS)
      singles.push((await post('/v1/reports/attribution', { model, ...range })).json());
    expect(res.json()).toEqual({ models: singles });
    // A subset, in the order asked.
    const two = (
      await post('/v1/reports/attribution/models', { ...range, models: ['linear', 'first_touch'] })
    ).json();
    expect(two).toEqual({ models: [singles[2], singles[1]] });
    const csv = await post('/v1/reports/attribution/models', { ...range, models: ['linear'] }, 'text/csv');
    expect(csv.body.split('\r\n')[0]).toBe('model,campaign_id,campaign_name,currency,conversions,value');
    expect(csv.body).toContain('linear,c1,Spring sale,XXX,0.5,5');
    const dup = await post('/v1/reports/attribution/models', { ...range, models: ['linear', 'linear'] });
    expect(dup.statusCode).toBe(400);
    expect(dup.json().error).toBe('PARLEY_ERR_VALIDATION');
    const single = await post('/v1/reports/attribution/models', { ...range, model: 'linear' });
    expect(single.statusCode).toBe(400);
  });

  it('campaigns: delivery, spend and credited conversions; Arrow equals JSON', async () => {
    const url = `/v1/reports/campaigns?from=${encodeURIComponent(range.from)}&to=${encodeURIComponent(range.to)}&model=last_touch`;
    const res = await get(url);
    expect(res.statusCode).toBe(200);
    const json = res.json() as { campaigns: Record<string, unknown>[] };
    expect(json.campaigns[0]).toEqual({
      campaign_id: 'c1',
      campaign_name: 'Spring sale',
      targeting_kind: 'none', // no stored campaign: targets nobody in particular
      served: 2,
      clicks: 1,
      click_rate: 0.5,
      spend_micros: 500_000,
      conversions: 2,
      cost_per_conversion_micros: 250_000,
      value_by_currency: { USD: 40, XXX: 10 },
      return_on_spend_by_currency: { USD: 80, XXX: 20 },
    });
    expect(json.campaigns.map((c) => c.campaign_id)).toEqual(['c1', 'c2', 'c9']);
    // As a table: one row per campaign and currency, delivery repeated on each.
    const arrow = arrowRows((await get(url, ARROW)).rawPayload);
    expect(
      arrow.map((r) => [
        r.campaign_id,
        r.campaign_name,
        r.currency,
        r.served,
        r.conversions,
        r.value,
        r.return_on_spend,
      ]),
    ).toEqual([
      ['c1', 'Spring sale', 'USD', 2, 1, 40, 80],
      ['c1', 'Spring sale', 'XXX', 2, 1, 10, 20],
      ['c2', null, null, 1, 0, 0, null],
      ['c9', null, 'USD', 1, 1, 7, 28],
    ]);
    const limited = (await get(url, undefined, keys[1].key)).json() as {
      campaigns: { campaign_id: string }[];
    };
    expect(limited.campaigns.map((c) => c.campaign_id)).toEqual(['c9']);
  });
});

describe('OpenAPI', () => {
  it('documents the report routes from their schemas', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const paths = Object.keys(res.json().paths);
    expect(paths).toEqual(
      expect.arrayContaining(['/v1/reports/funnel', '/v1/reports/attribution', '/v1/reports/campaigns']),
    );
  });
});

describe('GET /v1/events as Arrow', () => {
  it('streams the same events as the JSON page', async () => {
    const json = (await get('/v1/events?business_id=b1&limit=50')).json() as {
      events: Record<string, unknown>[];
    };
    const res = await get('/v1/events?business_id=b1&limit=50', ARROW);
    expect(res.statusCode).toBe(200);
    const rows = arrowRows(res.rawPayload).map((r) => ({
      ...r,
      occurred_at: new Date(Number(r.occurred_at)).toISOString(),
      props: JSON.parse(String(r.props)),
    }));
    expect(rows).toEqual(json.events);
    expect(rows.length).toBe(9);
  });
});
