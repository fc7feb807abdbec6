import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import {
  type AttributionRow,
  attributionAnswer,
  attributionRequestSchema,
  buildAttributionQuery,
} from '../core/reports/attribution.ts';
import { MODELS } from '../core/reports/models.ts';

// The analyst's journey on the embedded defaults: events in over HTTP, through the bus into the
// sink and the attribution processor, reports out; stored credits agree with the SQL path,
// including after a late touchpoint.

const ingestKey = 'pk_e2e_ingest_0123456789abcdef';
const analystKey = 'pk_e2e_analyst_0123456789abcdef';
let dir: string;
let running: Running;
const H = 3_600_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
let n = 0;
const event = (type: string, user: string, t: number, props: Record<string, unknown> = {}) => ({
  event_id: `e2e-${++n}`,
  type,
  occurred_at: at(t),
  business_id: 'shop',
  user_id: user,
  channel: 'whatsapp',
  props,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-reports-e2e-'));
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_SINK_BATCH_WAIT_MS: '20',
    PARLEY_API_KEYS: JSON.stringify([
      { key: ingestKey, role: 'ingest' },
      { key: analystKey, role: 'analyst' },
    ]),
  });
  running = await startParley(config, { logger: createLogger({ level: 'silent' }), out: () => {} });
});
afterAll(async () => {
  await running?.stop();
  await rm(dir, { recursive: true, force: true });
});

const ingest = async (events: unknown[]) => {
  const res = await running.app.inject({
    method: 'POST',
    url: '/v1/events',
    payload: events,
    headers: { authorization: `Bearer ${ingestKey}` },
  });
  expect(res.statusCode).toBe(202);
  expect(res.json().accepted).toBe(events.length);
};
const report = async (body: Record<string, unknown>) => {
  const res = await running.app.inject({
    method: 'POST',
    url: '/v1/reports/attribution',
    payload: { from: at(-10 * 86_400_000), to: at(10 * 86_400_000), ...body },
    headers: { authorization: `Bearer ${analystKey}` },
  });
  expect(res.statusCode).toBe(200);
  return res.json() as ReturnType<typeof attributionAnswer>;
};
async function sqlPath(model: (typeof MODELS)[number]) {
  const r = attributionRequestSchema.parse({ model, from: at(-10 * 86_400_000), to: at(10 * 86_400_000) });
  const rs = await running.store.client.query({
    ...buildAttributionQuery(running.store.database, r),
    format: 'JSONEachRow',
  });
  return attributionAnswer(model, await rs.json<AttributionRow>());
}
const round = (a: ReturnType<typeof attributionAnswer>) =>
  JSON.parse(JSON.stringify(a, (_, v) => (typeof v === 'number' ? +v.toFixed(6) : v)));
async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('reports end to end', () => {
  it('credits conversions as they stream in, re-credits on a late touchpoint, and agrees with SQL', async () => {
    await ingest([
      event('message.received', 'u1', 0),
      event('sponsored.served', 'u1', H, { campaign_id: 'spring', price_micros: 2000 }),
      event('sponsored.clicked', 'u1', 2 * H, { campaign_id: 'spring' }),
      event('order.placed', 'u1', 3 * H, { value: 80, currency: 'USD' }),
      event('order.placed', 'u2', 3 * H, { value: 20, currency: 'EUR' }),
    ]);
    const first = await eventually(
      () => report({ model: 'linear' }),
      (a) => a.rows.length === 1 && a.unattributed.conversions === 1,
    );
    expect(first).toEqual({
      model: 'linear',
      rows: [{ campaign_id: 'spring', campaign_name: null, conversions: 1, value_by_currency: { USD: 80 } }],
      unattributed: { conversions: 1, value_by_currency: { EUR: 20 } },
    });

    // u2 was served a campaign before ordering; the event arrives late.
    await ingest([event('sponsored.served', 'u2', 2 * H, { campaign_id: 'summer', price_micros: 1000 })]);
    const late = await eventually(
      () => report({ model: 'linear' }),
      (a) => a.unattributed.conversions === 0,
    );
    expect(late.rows).toEqual([
      { campaign_id: 'spring', campaign_name: null, conversions: 1, value_by_currency: { USD: 80 } },
      { campaign_id: 'summer', campaign_name: null, conversions: 1, value_by_currency: { EUR: 20 } },
    ]);
    // The stored credits (default windows) equal the SQL path for every model once the sink caught up.
    for (const model of MODELS) {
      const sql = await eventually(
        () => sqlPath(model),
        (a) => a.unattributed.conversions === 0 && a.rows.length === 2,
      );
      expect(round(await report({ model }))).toEqual(round(sql));
    }
    // A non-default window is answered by SQL: a 30-minute view window misses u2's serve.
    const narrow = await report({ model: 'linear', view_window_seconds: 1800 });
    expect(narrow.unattributed).toEqual({ conversions: 1, value_by_currency: { EUR: 20 } });
  });

  it('funnel and campaigns over the ingested events', async () => {
    const funnel = await running.app.inject({
      method: 'POST',
      url: '/v1/reports/funnel',
      payload: {
        steps: [{ type: 'sponsored.served' }, { type: 'order.placed' }],
        window_seconds: 86_400,
        from: at(-H),
        to: at(10 * H),
      },
      headers: { authorization: `Bearer ${analystKey}` },
    });
    expect(funnel.json()).toEqual({
      steps: [
        { type: 'sponsored.served', users: 2, median_seconds_from_previous: null },
        { type: 'order.placed', users: 2, median_seconds_from_previous: 5400 },
      ],
    });
    const csv = await running.app.inject({
      method: 'GET',
      url: `/v1/reports/campaigns?from=${at(-H)}&to=${at(10 * H)}&model=linear`,
      headers: { authorization: `Bearer ${analystKey}`, accept: 'text/csv' },
    });
    expect(csv.statusCode).toBe(200);
    // The one CSV dialect: quoted only when needed, CRLF.
    expect(csv.body.split('\r\n')[0]).toBe(
      'campaign_id,campaign_name,targeting_kind,currency,served,clicks,click_rate,spend_micros,campaign_conversions,conversions,value,cost_per_conversion_micros,return_on_spend',
    );
    expect(csv.body).toContain('\r\nspring,,none,USD,1,1,1,2000,1,1,80,2000,40000\r\n');
  });
});
