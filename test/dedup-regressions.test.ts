import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIM_KEYWORDS } from '../bin/sim/catalog.ts';
import { type Running, startParley } from '../bin/server.ts';
import { runSimulation } from '../bin/simulate.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import type { RefEvent } from '../core/reports/reference.ts';
import { type Harness, ingest, settled } from './helpers/dedup-scenario.ts';
import { metric, waitFor } from './helpers/process.ts';

// The duplicates seen in use, each against a running Parley on the embedded defaults: a click URL
// opened twice, an order re-sent half a second later, and a simulator run sent again re-stamped.

const adminKey = 'pk_dedup_regress_0123456789abcdef';
let dir: string;
let running: Running;
const h: Harness = {
  running: () => running,
  restart: async () => {},
  adminKey,
};
const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
  const res = await running.app.inject({
    method,
    url,
    payload: payload as object,
    headers: { authorization: `Bearer ${adminKey}` },
  });
  return res;
};
const FROM = '2020-01-01T00:00:00Z';
const TO = '2030-01-01T00:00:00Z';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-dedup-regress-'));
  running = await startParley(
    parseConfig({
      PARLEY_DATA_DIR: dir,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'silent',
      PARLEY_SINK_BATCH_WAIT_MS: '20',
      PARLEY_MIN_AUDIENCE_SIZE: '1',
      PARLEY_DECISION_QUIET_SECONDS: '0',
      PARLEY_KEYWORDS: SIM_KEYWORDS.join(','),
      PARLEY_API_KEYS: JSON.stringify([{ key: adminKey, role: 'admin' }]),
    }),
    { logger: createLogger({ level: 'silent' }), out: () => {} },
  );
});
afterAll(async () => {
  await running?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('duplicates seen in use', () => {
  it('a click URL opened twice is one click, at the first time', async () => {
    const now = Date.now();
    const talk: RefEvent = {
      event_id: 'talk-1',
      type: 'message.received',
      t: now - 60_000,
      business_id: 'barber',
      user_id: 'u1',
      channel: 'whatsapp',
      props: { text_length: 4 },
    };
    await ingest(h, [talk]);
    // The campaign's audience is counted over stored events: the talk must be stored first.
    await settled(h);
    const seg = await call('POST', '/v1/segments', {
      name: 'talked',
      business_id: 'barber',
      rule: { performed: 'message.received' },
    });
    expect(seg.statusCode).toBe(201);
    const cmp = await call('POST', '/v1/campaigns', {
      business_id: 'barber',
      name: 'Cut',
      status: 'active',
      creative: { text: 'A cut' },
      targeting: { segments_all: [seg.json().id], channels: ['whatsapp'] },
      schedule: { start: new Date(now - 3_600_000).toISOString() },
      budget: { total_micros: 1_000_000 },
      bid: { cpm_micros: 3_000_000 },
      frequency_cap: { max: 5, per_seconds: 3600 },
      pacing: 'asap',
    });
    expect(cmp.statusCode, cmp.body).toBe(201);
    const decision = await waitFor('a decision', async () => {
      const r = await call('POST', '/v1/decisions', {
        user_id: 'u1',
        business_id: 'barber',
        channel: 'whatsapp',
      });
      return (
        r.statusCode === 200 && (r.json() as { tracking: { click_url: string; impression_url: string } })
      );
    });
    // The offer becomes an impression once its delivery is seen.
    const shown = new URL(decision.tracking.impression_url);
    expect((await running.app.inject({ url: shown.pathname + shown.search })).statusCode).toBeLessThan(400);
    const path = new URL(decision.tracking.click_url).pathname + new URL(decision.tracking.click_url).search;
    const before = Date.now();
    expect((await running.app.inject({ url: path })).statusCode).toBeLessThan(400);
    const between = Date.now();
    await new Promise((r) => setTimeout(r, 30));
    expect((await running.app.inject({ url: path })).statusCode).toBeLessThan(400);
    await settled(h);

    const perf = await call('GET', `/v1/reports/campaigns?from=${FROM}&to=${TO}&business_id=barber`);
    expect(perf.json().campaigns).toMatchObject([
      { campaign_id: cmp.json().id, served: 1, clicks: 1, click_rate: 1 },
    ]);
    const clicks = (await call('GET', '/v1/events?business_id=barber&type=sponsored.clicked')).json().events;
    expect(clicks).toHaveLength(1);
    const at = Date.parse(clicks[0].occurred_at);
    expect(at).toBeGreaterThanOrEqual(before - 1);
    expect(at).toBeLessThanOrEqual(between);
    expect(
      await metric(running.url, adminKey, 'parley_duplicate_events_total', { stage: 'sink' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('an order re-sent 500 ms later is one conversion on both attribution paths and in funnels', async () => {
    const t = Date.parse('2026-03-01T12:00:00Z');
    const base = { business_id: 'shop', user_id: 'o1', channel: 'whatsapp' as const };
    const click: RefEvent = {
      ...base,
      event_id: 'shop-click',
      type: 'sponsored.clicked',
      t: t - 3_600_000,
      props: { campaign_id: 'spring', decision_id: 'd-shop' },
    };
    const order: RefEvent = {
      ...base,
      event_id: 'shop-order',
      type: 'order.placed',
      t,
      props: { value: 40 },
    };
    await ingest(h, [click, order]);
    await new Promise((r) => setTimeout(r, 500));
    await ingest(h, [{ ...order, t: t + 500 }]);
    await settled(h);
    for (const windows of [{}, { click_window_seconds: 86_400 }]) {
      const a = await call('POST', '/v1/reports/attribution', {
        model: 'last_touch',
        from: FROM,
        to: TO,
        business_id: 'shop',
        ...windows,
      });
      expect(a.json().rows).toEqual([
        { campaign_id: 'spring', campaign_name: null, conversions: 1, value_by_currency: { XXX: 40 } },
      ]);
    }
    const f = await call('POST', '/v1/reports/funnel', {
      steps: [{ type: 'order.placed' }, { type: 'order.placed' }],
      window_seconds: 3600,
      from: FROM,
      to: TO,
      business_id: 'shop',
    });
    expect(f.json().steps.map((s: { users: number }) => s.users)).toEqual([1, 0]);
  });

  it('a simulator run sent again, re-stamped minutes later, changes nothing', async () => {
    const now = Date.now();
    const sim = (at: number) =>
      runSimulation({
        url: running.url,
        key: adminKey,
        businesses: 3,
        users: 40,
        days: 2,
        seed: '42',
        concurrency: 2,
        now: at,
        progress: { write: () => true, isTTY: false },
      });
    const first = await sim(now - 5 * 60_000);
    await settled(h);
    const reports = async () => {
      const funnel = await call('POST', '/v1/reports/funnel', {
        steps: [{ type: 'message.received' }, { type: 'sponsored.served' }, { type: 'order.placed' }],
        window_seconds: 7 * 86_400,
        from: FROM,
        to: TO,
      });
      const attribution = await call('POST', '/v1/reports/attribution', {
        model: 'linear',
        from: FROM,
        to: TO,
      });
      const sql = await call('POST', '/v1/reports/attribution', {
        model: 'linear',
        from: FROM,
        to: TO,
        click_window_seconds: 86_400,
      });
      let stored = 0;
      let cursor: string | undefined;
      do {
        const page = (
          await call('GET', `/v1/events?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
        ).json();
        stored += page.events.length;
        cursor = page.next ?? undefined;
      } while (cursor);
      // Sums of money may differ in their last bits with the order rows are added in.
      return roundDeep({ funnel: funnel.json(), attribution: attribution.json(), sql: sql.json(), stored });
    };
    const once = await reports();
    const second = await sim(now);
    expect(second.accepted).toBe(first.accepted);
    await settled(h);
    expect(await reports()).toEqual(once);
  });
});

/** Every number rounded to 6 decimals, so float sums in another order compare equal. */
function roundDeep(v: unknown): unknown {
  if (typeof v === 'number') return Math.round(v * 1e6) / 1e6;
  if (Array.isArray(v)) return v.map(roundDeep);
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, roundDeep(x)]));
  return v;
}
