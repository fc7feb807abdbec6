import fc from 'fast-check';
import { expect } from 'vitest';
import type { Running } from '../../bin/server.ts';
import { topicNames } from '../../core/config.ts';
import { funnelRequestSchema } from '../../core/reports/funnel.ts';
import {
  distinct,
  type RefEvent,
  referenceAttribution,
  referenceFunnel,
} from '../../core/reports/reference.ts';
import { waitFor } from './process.ts';

// Random histories in which events arrive again under the same event_id — re-stamped, with other
// props or type, reordered, in other batches, after a restart, under another user — checked
// report by report against the reference computed over the first accepted copies only.

const H = 3_600_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const TYPES = ['message.received', 'sponsored.served', 'sponsored.clicked', 'order.placed'] as const;
const FROM = new Date(T0 - 30 * 86_400_000).toISOString();
const TO = new Date(T0 + 30 * 86_400_000).toISOString();
const ORDER_TWICE = { performed: 'order.placed', count: { gte: 2 } };

export type Send = { event: RefEvent; phase: number };

const base = fc.record({
  type: fc.constantFrom(...TYPES),
  user: fc.integer({ min: 0, max: 2 }),
  hour: fc.integer({ min: 0, max: 72 }),
  campaign: fc.constantFrom('ca', 'cb'),
  value: fc.integer({ min: 1, max: 90 }),
  phase: fc.integer({ min: 0, max: 1 }),
  key: fc.double({ min: 0, max: 1, noNaN: true }),
});
const copy = fc.record({
  of: fc.nat(),
  shiftHours: fc.integer({ min: -30, max: 30 }),
  type: fc.option(fc.constantFrom(...TYPES), { nil: undefined }),
  value: fc.integer({ min: 1, max: 90 }),
  otherUser: fc.boolean(),
  phase: fc.integer({ min: 0, max: 1 }),
  key: fc.double({ min: 0, max: 1, noNaN: true }),
});
export const historyArb = fc.record({
  bases: fc.array(base, { minLength: 2, maxLength: 12 }),
  copies: fc.array(copy, { minLength: 1, maxLength: 10 }),
  cuts: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
});
type History = typeof historyArb extends fc.Arbitrary<infer T> ? T : never;

const props = (type: string, campaign: string, value: number): Record<string, unknown> =>
  type === 'order.placed'
    ? { value, currency: 'USD' }
    : type.startsWith('sponsored.')
      ? { campaign_id: campaign, decision_id: `d-${campaign}-${value}` }
      : { text_length: value };

/**
 * What is sent, phase by phase, in order. A copy under another user_id is on another partition,
 * so it is sent in a later phase than its original (the bus orders partitions only by time).
 */
export function sendsOf(h: History, business: string): Send[] {
  const sends: (Send & { key: number })[] = h.bases.map((b, i) => ({
    phase: b.phase,
    key: b.key,
    event: {
      event_id: `${business}-e${i}`,
      type: b.type,
      t: T0 + b.hour * H,
      business_id: business,
      user_id: `u${b.user}`,
      channel: 'whatsapp',
      props: props(b.type, b.campaign, b.value),
    },
  }));
  for (const c of h.copies) {
    const orig = sends[c.of % h.bases.length];
    const otherUser = c.otherUser && orig.phase === 0;
    const type = c.type ?? orig.event.type;
    sends.push({
      phase: otherUser ? 1 : Math.max(c.phase, orig.phase),
      key: c.key,
      event: {
        ...orig.event,
        type,
        t: orig.event.t + c.shiftHours * H + 1,
        user_id: otherUser ? `${orig.event.user_id}x` : orig.event.user_id,
        props: props(type, 'cb', c.value),
      },
    });
  }
  return sends
    .sort((a, b) => a.phase - b.phase || a.key - b.key)
    .map(({ event, phase }) => ({ event, phase }));
}

const canonical = (e: RefEvent) => ({
  event_id: e.event_id,
  type: e.type,
  occurred_at: new Date(e.t).toISOString(),
  business_id: e.business_id,
  user_id: e.user_id,
  channel: e.channel,
  props: e.props,
});

export type Harness = {
  running: () => Running;
  /** Stops Parley and starts it again on the same data. */
  restart: () => Promise<void>;
  adminKey: string;
};

async function call(h: Harness, method: 'GET' | 'POST', url: string, payload?: unknown) {
  const res = await h.running().app.inject({
    method,
    url,
    payload: payload as object,
    headers: { authorization: `Bearer ${h.adminKey}` },
  });
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** Waits until every processor of the events topic has committed everything on it. */
export async function settled(h: Harness) {
  const r = h.running();
  const cfg = r.config;
  const topic = topicNames(cfg).events;
  const p = cfg.topics.prefix;
  await waitFor(
    'processors caught up',
    async () => {
      for (const g of ['parley-sink', 'parley-attribution', 'parley-segments']) {
        const lag = await r.bus.lag(`${p}${g}`, topic);
        if (lag.some((l) => l.committed < l.end)) return false;
      }
      return true;
    },
    // Generous: the whole suite runs beside this on two cores.
    90_000,
  );
}

export async function ingest(h: Harness, events: RefEvent[]) {
  const res = await call(h, 'POST', '/v1/events', events.map(canonical));
  expect(res).toEqual({ accepted: events.length, rejected: [] });
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;
type ByCurrency = Record<string, number>;
const roundMoney = (m: ByCurrency) =>
  Object.fromEntries(
    Object.entries(m)
      .map(([k, v]) => [k, round(v)] as const)
      .filter(([, v]) => v !== 0),
  );
const roundAnswer = (a: {
  rows: { campaign_id: string; conversions: number; value_by_currency: ByCurrency }[];
  unattributed: { conversions: number; value_by_currency: ByCurrency };
}) => ({
  rows: a.rows
    .map((r) => ({
      campaign_id: r.campaign_id,
      conversions: round(r.conversions),
      value_by_currency: roundMoney(r.value_by_currency),
    }))
    .filter((r) => r.conversions !== 0 || Object.keys(r.value_by_currency).length > 0),
  unattributed: {
    conversions: round(a.unattributed.conversions),
    value_by_currency: roundMoney(a.unattributed.value_by_currency),
  },
});

/** Sends a history (restarting Parley between its phases) and checks every report against the reference. */
export async function checkHistory(h: Harness, history: History, business: string) {
  const seg = await call(h, 'POST', '/v1/segments', {
    name: `${business} orders`,
    business_id: business,
    rule: ORDER_TWICE,
  });
  const sends = sendsOf(history, business);
  for (const phase of [0, 1]) {
    const mine = sends.filter((s) => s.phase === phase).map((s) => s.event);
    for (let i = 0, c = 0; i < mine.length; c++) {
      const n = history.cuts[c % history.cuts.length];
      await ingest(h, mine.slice(i, i + n));
      i += n;
    }
    await settled(h);
    if (phase === 0) await h.restart();
  }
  const firsts = distinct(sends.map((s) => s.event));

  // GET /v1/events: exactly the first copies.
  const listed = await call(h, 'GET', `/v1/events?business_id=${business}&limit=1000`);
  const key = (e: { event_id: string; type: string; user_id: string; t: number; props: unknown }) =>
    JSON.stringify([e.event_id, e.type, e.user_id, e.t, e.props]);
  expect(
    (listed.events as (ReturnType<typeof canonical> & { thread_id: string })[])
      .map((e) => key({ ...e, t: Date.parse(e.occurred_at) }))
      .sort(),
  ).toEqual(firsts.map(key).sort());

  // Funnels.
  for (const steps of [
    ['sponsored.served', 'sponsored.clicked', 'order.placed'],
    ['order.placed', 'order.placed'],
  ]) {
    const body = {
      steps: steps.map((type) => ({ type })),
      window_seconds: 7 * 86_400,
      from: FROM,
      to: TO,
      business_id: business,
    };
    const got = await call(h, 'POST', '/v1/reports/funnel', body);
    expect(got).toEqual(referenceFunnel(firsts, funnelRequestSchema.parse(body)));
  }

  // Attribution: stored credits (default windows) and the SQL path (other windows).
  for (const model of ['last_touch', 'linear'] as const) {
    for (const windows of [{}, { click_window_seconds: 5 * 86_400, view_window_seconds: 2 * 86_400 }]) {
      const body = { model, from: FROM, to: TO, business_id: business, ...windows };
      const got = await call(h, 'POST', '/v1/reports/attribution', body);
      const want = referenceAttribution(firsts, {
        model,
        from: Date.parse(FROM),
        to: Date.parse(TO),
        click_window_seconds: 604_800,
        view_window_seconds: 86_400,
        half_life_seconds: 604_800,
        business_id: business,
        ...windows,
      });
      expect(roundAnswer(got)).toEqual(roundAnswer(want));
    }
  }

  // Campaign performance: served and clicks per campaign.
  const perf = await call(h, 'GET', `/v1/reports/campaigns?from=${FROM}&to=${TO}&business_id=${business}`);
  const delivery = (rows: { campaign_id: string; served: number; clicks: number }[]) =>
    rows
      .map((r) => ({ campaign_id: r.campaign_id, served: Number(r.served), clicks: Number(r.clicks) }))
      .filter((r) => r.served || r.clicks)
      .sort((a, b) => a.campaign_id.localeCompare(b.campaign_id));
  const want = new Map<string, { campaign_id: string; served: number; clicks: number }>();
  for (const e of firsts) {
    if (!e.type.startsWith('sponsored.')) continue;
    const id = String(e.props.campaign_id);
    const row = want.get(id) ?? { campaign_id: id, served: 0, clicks: 0 };
    want.set(id, row);
    if (e.type === 'sponsored.served') row.served++;
    else row.clicks++;
  }
  expect(delivery(perf.campaigns)).toEqual(delivery([...want.values()]));

  // Segments: the preview (SQL) and the streaming membership.
  const orders = new Map<string, number>();
  for (const e of firsts)
    if (e.type === 'order.placed') orders.set(e.user_id, (orders.get(e.user_id) ?? 0) + 1);
  const members = [...orders]
    .filter(([, n]) => n >= 2)
    .map(([u]) => u)
    .sort();
  const preview = await call(h, 'POST', '/v1/segments/preview', { business_id: business, rule: ORDER_TWICE });
  expect(preview.size).toBe(members.length);
  let stored: string[] = [];
  await waitFor(
    'membership',
    async () => {
      const page = await call(h, 'GET', `/v1/segments/${seg.id}/members?limit=100`);
      stored = (page.members as { user_id: string }[]).map((m) => m.user_id).sort();
      return JSON.stringify(stored) === JSON.stringify(members);
    },
    10_000,
  ).catch(() => {});
  expect(stored).toEqual(members);
  return { sent: sends.length, firsts: firsts.length };
}
