import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBootstrapQueries } from '../api/decisions/bootstrap.ts';
import { createDecisionEngine } from '../api/decisions/feed.ts';
import { topicNames } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import { testApp } from './helpers/app.ts';

// The decision API on the real wiring (buildApp, embedded store and log): campaigns and segments
// made through the API, conversations and opt-outs ingested as events, decisions served from
// memory as held offers, impressions recorded from the offer's impression URL, and clicks recorded
// from signed URLs.

let t: Awaited<ReturnType<typeof testApp>>;
const seen: CanonicalEvent[] = [];
let stopWatch: () => Promise<void>;
const now = Date.now();

const call = (method: 'GET' | 'POST', url: string, key: string, body?: unknown) =>
  t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });

async function waitFor<T>(f: () => Promise<T> | T, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const event = (i: string, type: string, user: string, props: Record<string, unknown> = {}) => ({
  event_id: `ev-${i}`,
  type,
  occurred_at: new Date(now - 60_000).toISOString(),
  business_id: 'b1',
  user_id: user,
  channel: 'whatsapp',
  props,
});

beforeAll(async () => {
  t = await testApp({ PARLEY_MIN_AUDIENCE_SIZE: '3', PARLEY_PUBLIC_URL: 'https://ads.example.com' });
  const sub = await t.bus.subscribe({
    groupId: 'test-watch',
    topics: [topicNames(t.config).events],
    maxWaitMs: 5,
    handler: async (b) => {
      for (const m of b.messages) seen.push(JSON.parse(m.value.toString()));
    },
  });
  stopWatch = () => sub.stop();
  const users = ['u1', 'u2', 'u3', 'u4'];
  const evs = users.map((u) => event(u, 'message.received', u, { text_length: 5 }));
  // Stored (for segment sizes) and on the bus (for the engine), as the sink would have it.
  await t.store.client.insert({
    table: `${t.store.database}.events`,
    values: evs.map((e) => ({
      ...e,
      thread_id: `t_b1_${e.user_id}`,
      props: JSON.stringify(e.props),
      ingested_at: new Date().toISOString(),
    })),
    format: 'JSONEachRow',
  });
  expect((await call('POST', '/v1/events', t.keys.ingest, evs)).statusCode).toBe(202);
});

afterAll(async () => {
  await stopWatch?.();
  await t?.close();
  if (t) await rm(t.dir, { recursive: true, force: true });
});

describe('decisions API', () => {
  let campaignId: string;
  let clickUrl: string;

  it('offers a live campaign to a targeted user with a conversation; its impression URL records sponsored.served', async () => {
    const seg = await call('POST', '/v1/segments', t.keys.marketer, {
      name: 'talked to us',
      business_id: 'b1',
      rule: { performed: 'message.received' },
    });
    expect(seg.json()).toMatchObject({ size: 4 });
    const cmp = await call('POST', '/v1/campaigns', t.keys.marketer, {
      business_id: 'b1',
      name: 'Spring cut',
      status: 'active',
      creative: { text: 'A spring cut, 20% off', buttons: [{ title: 'Book' }] },
      targeting: { segments_all: [seg.json().id], channels: ['whatsapp'] },
      schedule: { start: new Date(now - 3600_000).toISOString() },
      budget: { total_micros: 1_000_000 },
      bid: { cpm_micros: 3_000_000 },
      frequency_cap: { max: 1, per_seconds: 3600 },
      pacing: 'asap',
    });
    expect(cmp.statusCode).toBe(201);
    campaignId = cmp.json().id;
    await waitFor(
      () => call('GET', '/v1/decisions/ready', t.keys.adserver),
      (r) => r.statusCode === 200,
    );
    const req = { user_id: 'u1', business_id: 'b1', channel: 'whatsapp' };
    const res = await waitFor(
      () => call('POST', '/v1/decisions', t.keys.adserver, req),
      (r) => r.statusCode === 200,
    );
    const d = res.json();
    expect(d).toMatchObject({
      campaign_id: campaignId,
      creative: { text: 'A spring cut, 20% off' },
      price_micros: 3000,
      postback_payload: `parley:d:${d.decision_id}:${campaignId}`,
    });
    expect(d.postback_payload).toMatch(/^parley:d:[A-Za-z0-9_.-]{1,128}:[A-Za-z0-9_.-]{1,128}$/);
    expect(d.tracking.click_url).toBe(
      `https://ads.example.com/v1/decisions/${d.decision_id}/click?o=${d.delivery_tag}`,
    );
    expect(d.tracking.impression_url).toBe(`https://ads.example.com/v1/impressions/${d.delivery_tag}`);
    expect(d.hold_seconds).toBe(600);
    clickUrl = d.tracking.click_url;
    // An offer is not an impression: nothing is published until delivery is seen.
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.filter((e) => e.type === 'sponsored.served')).toHaveLength(0);
    const shown = await t.app.inject({ method: 'GET', url: new URL(d.tracking.impression_url).pathname });
    expect(shown.statusCode).toBe(204);
    const served = await waitFor(
      () => seen.filter((e) => e.type === 'sponsored.served'),
      (l) => l.length === 1,
    );
    expect(served[0]).toMatchObject({
      user_id: 'u1',
      business_id: 'b1',
      thread_id: 't_b1_u1',
      channel: 'whatsapp',
      props: { decision_id: d.decision_id, campaign_id: campaignId, price_micros: 3000 },
    });
  });

  it('answers 204 when nothing is eligible, and explains why with explain: true', async () => {
    const again = await call('POST', '/v1/decisions', t.keys.adserver, {
      user_id: 'u1',
      business_id: 'b1',
      channel: 'whatsapp',
    });
    expect(again.statusCode).toBe(204);
    const explained = await call('POST', '/v1/decisions', t.keys.adserver, {
      user_id: 'u1',
      business_id: 'b1',
      channel: 'whatsapp',
      explain: true,
    });
    expect(explained.statusCode).toBe(200);
    expect(explained.json()).toEqual({
      decision_id: null,
      candidates: [{ campaign_id: campaignId, reason: 'frequency_cap' }],
    });
    const stranger = await call('POST', '/v1/decisions', t.keys.adserver, {
      user_id: 'u9',
      business_id: 'b1',
      channel: 'whatsapp',
      explain: true,
    });
    expect(stranger.json().candidates[0].reason).toBe('targeting_not_matched');
    const sms = await call('POST', '/v1/decisions', t.keys.adserver, {
      user_id: 'u3',
      business_id: 'b1',
      channel: 'sms',
      explain: true,
    });
    expect(sms.json().candidates[0].reason).toBe('channel_not_allowed');
    const chosen = await call('POST', '/v1/decisions', t.keys.adserver, {
      user_id: 'u3',
      business_id: 'b1',
      channel: 'whatsapp',
      explain: true,
    });
    expect(chosen.json().candidates).toEqual([
      expect.objectContaining({ campaign_id: campaignId, reason: 'chosen', price_micros: 3000 }),
    ]);
  });

  it('records a click from the signed URL once, and refuses a forged one', async () => {
    const u = new URL(clickUrl);
    const path = `${u.pathname}${u.search}`;
    const forged = path.replace(`.${campaignId}.`, '.cmp_other.');
    expect(forged).not.toBe(path);
    expect((await t.app.inject({ method: 'GET', url: forged })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'GET', url: path })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: path })).statusCode).toBe(204);
    const clicks = await waitFor(
      () => seen.filter((e) => e.type === 'sponsored.clicked'),
      (l) => l.length === 2,
    );
    expect(clicks[0].event_id).toBe(clicks[1].event_id); // one click in storage
    expect(clicks[0]).toMatchObject({ user_id: 'u1', props: { campaign_id: campaignId } });
  });

  it('stops serving a user who opts out, across the bus', async () => {
    expect((await call('POST', '/v1/events', t.keys.ingest, [event('o2', 'optout', 'u2')])).statusCode).toBe(
      202,
    );
    const r = await waitFor(
      () =>
        call('POST', '/v1/decisions', t.keys.adserver, {
          user_id: 'u2',
          business_id: 'b1',
          channel: 'whatsapp',
          explain: true,
        }),
      (x) => x.json().candidates?.[0]?.reason === 'opted_out',
    );
    expect(r.statusCode).toBe(200);
    expect(r.json().decision_id).toBeNull();
  });

  it('needs the adserver role and a valid request', async () => {
    const body = { user_id: 'u4', business_id: 'b1', channel: 'whatsapp' };
    expect((await call('POST', '/v1/decisions', t.keys.marketer, body)).statusCode).toBe(403);
    const bad = await call('POST', '/v1/decisions', t.keys.adserver, { ...body, channel: 'fax' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe('PARLEY_ERR_VALIDATION');
    const metrics = (
      await t.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${t.keys.admin}` },
      })
    ).body;
    expect(metrics).toMatch(/parley_decisions_total\{outcome="served"\} [1-9]/);
    expect(metrics).toMatch(/parley_decisions_total\{outcome="none"\} [1-9]/);
  });
  it('answers ordinary decisions over HTTP on the answer path, as the route answers them', async () => {
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const post = (body: string) =>
      fetch(`${base}/v1/decisions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.keys.adserver}`, 'content-type': 'application/json' },
        body,
      });
    const before = t.app.parleyAnswers.answered;
    const u4 = JSON.stringify({ user_id: 'u4', business_id: 'b1', channel: 'whatsapp' });
    const fast = await post(u4);
    expect(t.app.parleyAnswers.answered).toBe(before + 1);
    expect(fast.status).toBe(200);
    const d = await fast.json();
    expect(Object.keys(d)).toEqual([
      'decision_id',
      'campaign_id',
      'creative',
      'price_micros',
      'delivery_tag',
      'tracking',
      'postback_payload',
      'hold_seconds',
    ]);
    expect(d).toMatchObject({
      campaign_id: campaignId,
      creative: { text: 'A spring cut, 20% off', buttons: [{ title: 'Book' }] },
      price_micros: 3000,
      postback_payload: `parley:d:${d.decision_id}:${campaignId}`,
      hold_seconds: 600,
    });
    expect(d.tracking.click_url).toBe(
      `https://ads.example.com/v1/decisions/${d.decision_id}/click?o=${d.delivery_tag}`,
    );
    expect(d.tracking.impression_url).toBe(`https://ads.example.com/v1/impressions/${d.delivery_tag}`);
    expect(fast.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(fast.headers.get('cache-control')).toBe('no-store');
    expect(fast.headers.get('x-content-type-options')).toBe('nosniff');
    // The offer is held: the same user is now capped, answered 204 on the answer path too.
    const again = await post(u4);
    expect(again.status).toBe(204);
    expect(t.app.parleyAnswers.answered).toBe(before + 2);
    // An explanation, and a misspelt key, are the route's to answer.
    const explained = await post(
      JSON.stringify({ user_id: 'u4', business_id: 'b1', channel: 'whatsapp', explain: true }),
    );
    expect(await explained.json()).toEqual({
      decision_id: null,
      candidates: [{ campaign_id: campaignId, reason: 'frequency_cap' }],
    });
    const typo = await post('{"user_id":"u4","busines_id":"b1","channel":"whatsapp"}');
    expect(typo.status).toBe(400);
    expect((await typo.json()).message).toMatch(/did you mean "business_id"/);
    expect(t.app.parleyAnswers.answered).toBe(before + 2);
    // The offer's impression URL records the impression as any offer's does.
    const shown = await fetch(`${base}${new URL(d.tracking.impression_url).pathname}`);
    expect(shown.status).toBe(204);
    await waitFor(
      () => seen.filter((e) => e.type === 'sponsored.served' && e.props?.decision_id === d.decision_id),
      (l) => l.length === 1,
    );
  });
});

describe('decision engine start', () => {
  it('takes delivery before the cutoff from the store and after it from the bus, counting nothing twice', async () => {
    const h = 3600_000;
    const row = (id: string, type: string, user: string, agoMs: number, props: Record<string, unknown>) => ({
      event_id: id,
      type,
      occurred_at: new Date(Date.now() - agoMs).toISOString(),
      business_id: 'b7',
      user_id: user,
      thread_id: `t_b7_${user}`,
      channel: 'webchat',
      props,
    });
    const served = (i: number, agoMs: number) =>
      row(`old-s${i}`, 'sponsored.served', `v${i}`, agoMs, {
        decision_id: `d_old${i}`,
        campaign_id: 'cmp_old',
        price_micros: 100,
      });
    const stored = [
      ...[0, 1, 2, 3].map((i) => served(i, 30 * h)),
      served(4, 3 * h),
      row('old-c1', 'sponsored.clicked', 'v1', 29 * h, { decision_id: 'd_old1', campaign_id: 'cmp_old' }),
      row('old-c1b', 'sponsored.clicked', 'v1', 29 * h, { decision_id: 'd_old1', campaign_id: 'cmp_old' }),
      row('old-m8', 'message.received', 'v8', 3 * h, {}),
      row('old-o7', 'optout', 'v7', 3 * h, { scope: 'marketing' }),
    ];
    await t.store.client.insert({
      table: `${t.store.database}.events`,
      values: stored.map((e) => ({
        ...e,
        props: JSON.stringify(e.props),
        ingested_at: new Date().toISOString(),
      })),
      format: 'JSONEachRow',
    });
    // On the bus: one of the stored serves (before the cutoff) and a new one after it.
    const onBus = [served(4, 3 * h), served(5, 60_000)];
    await t.bus.publish(
      topicNames(t.config).events,
      onBus.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    );
    const engine = await createDecisionEngine({
      store: t.store,
      feed: t.feed,
      logger: createLogger({ level: 'silent' }),
      topics: topicNames(t.config),
      decisions: t.config.decisions,
    });
    try {
      await engine.ready;
      expect(engine.state.statsOf('cmp_old')).toMatchObject({ served: 6, clicks: 1, spentTotal: 600 });
      const v8 = engine.state.view('v8', 'b7', 'webchat', 't_b7_v8', Date.now());
      expect(v8.hasConversation).toBe(true);
      expect(engine.state.view('v7', 'b7', 'webchat', 't_b7_v7', Date.now()).optedOut).toBe(true);
      // The serve 3 h ago (before the cutoff: delivery from the store) still counts for v4's
      // frequency window, from the bus.
      expect(
        engine.state
          .view('v4', 'b7', 'webchat', 't_b7_v4', Date.now())
          .servesSince('cmp_old', Date.now() - 31 * h),
      ).toBe(1);
    } finally {
      await engine.stop();
    }
  });

  it('builds its start-up queries with bound parameters', () => {
    const q = buildBootstrapQueries('parley', 1_700_000_000_000);
    expect(q.delivery.query).toContain('FROM parley.events FINAL');
    expect(q.delivery.query).toContain('{cutoff:Int64}');
    expect(q.delivery.query_params).toEqual({ cutoff: 1_700_000_000_000 });
    for (const x of Object.values(q))
      expect(x.query).toContain('occurred_at < fromUnixTimestamp64Milli({cutoff:Int64})');
  });
});
