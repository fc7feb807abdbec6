import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../core/log.ts';
import { resolveClickKey } from '../core/offers/click.ts';
import { derivedEventId, type OfferFacts, signOffer, verifyOffer } from '../core/offers/token.ts';
import { whatsappDelivery } from '../ingest/webhooks/examples.ts';
import { signBody } from '../ingest/webhooks/signature.ts';
import { testApp } from './helpers/app.ts';
import { startSink } from './helpers/sink.ts';

// Offers confirmed through every path on the real wiring (embedded store and log, the sink
// storing what the bus takes): POST /v1/impressions, the impression URL, and signed Messenger
// and WhatsApp deliveries carrying the delivery tag. Forged, altered, expired and replayed tokens
// on each path; spend in the campaign report equals the confirmed offers' prices to the micro.

const APP_SECRET = 'impressions-test-app-secret';
let t: Awaited<ReturnType<typeof testApp>>;
let stopSink: () => Promise<void>;
let key: Buffer;
const now = Date.now();

const call = (method: 'GET' | 'POST', url: string, k: string, body?: unknown) =>
  t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${k}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });

async function waitFor<T>(f: () => Promise<T> | T, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const webhook = (platform: string, body: unknown) => {
  const raw = JSON.stringify(body);
  return t.app.inject({
    method: 'POST',
    url: `/v1/webhooks/${platform}`,
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(APP_SECRET, raw) },
    payload: raw,
  });
};

const messengerEcho = (tag: string, mid: string) => ({
  object: 'page',
  entry: [
    {
      id: '104512345678901',
      time: Date.now(),
      messaging: [
        {
          sender: { id: '104512345678901' },
          recipient: { id: 'psid-1' },
          timestamp: Date.now(),
          message: { is_echo: true, app_id: 1517776481860111, metadata: tag, mid, text: 'A spring cut' },
        },
      ],
    },
  ],
});

const whatsappStatuses = (tag: string) =>
  whatsappDelivery({
    statuses: ['sent', 'delivered', 'read'].map((status, i) => ({
      id: 'wamid.HBgLMTY1MDUwNzY1MjAVAgARGBJBQkNERUYwMTIzAA==',
      status,
      timestamp: String(Math.floor(Date.now() / 1000) + i),
      recipient_id: '16505551234',
      biz_opaque_callback_data: tag,
    })),
  });

async function storedServed() {
  const rs = await t.store.client.query({
    query: `SELECT event_id, JSONExtractString(props, 'decision_id') AS d, JSONExtractInt(props, 'price_micros') AS p
      FROM ${t.store.database}.events FINAL WHERE type = 'sponsored.served' ORDER BY d`,
    format: 'JSONEachRow',
  });
  return (await rs.json()) as { event_id: string; d: string; p: string }[];
}

beforeAll(async () => {
  t = await testApp({
    PARLEY_HASH_SECRET: 'impressions-test-hash-secret',
    PARLEY_META_APP_SECRET: APP_SECRET,
    PARLEY_DECISION_QUIET_SECONDS: '0',
  });
  key = await resolveClickKey(t.config, createLogger({ level: 'silent' }));
  stopSink = await startSink(t);
  const talk = ['u1', 'u2', 'u3', 'u4', 'u5'].flatMap((u) =>
    (['messenger', 'whatsapp', 'webchat'] as const).map((channel) => ({
      event_id: `talk-${u}-${channel}`,
      type: 'message.received',
      occurred_at: new Date(now - 60_000).toISOString(),
      business_id: 'b1',
      user_id: u,
      channel,
      props: { text_length: 4, ...(u === 'u5' ? { keywords: ['haircut'] } : {}) },
    })),
  );
  expect((await call('POST', '/v1/events', t.keys.ingest, talk)).statusCode).toBe(202);
  for (const c of [
    { name: 'Everyone', bid: { cpm_micros: 2_000_000 }, targeting: {} },
    { name: 'Haircut talk', bid: { cpm_micros: 7_000_000 }, targeting: { keywords_any: ['Haircut'] } },
  ]) {
    const r = await call('POST', '/v1/campaigns', t.keys.marketer, {
      business_id: 'b1',
      status: 'active',
      creative: { text: c.name },
      schedule: { start: new Date(now - 3600_000).toISOString() },
      budget: { total_micros: 1_000_000 },
      frequency_cap: { max: 5, per_seconds: 60 },
      pacing: 'asap',
      ...c,
    });
    expect(r.statusCode).toBe(201);
  }
  await waitFor(
    () => call('GET', '/v1/decisions/ready', t.keys.adserver),
    (r) => r.statusCode === 200,
  );
});

afterAll(async () => {
  await stopSink?.();
  await t?.close();
  if (t) await rm(t.dir, { recursive: true, force: true });
});

const offer = async (user: string, channel: string, keywords?: string[]) => {
  const r = await waitFor(
    () =>
      call('POST', '/v1/decisions', t.keys.adserver, {
        user_id: user,
        business_id: 'b1',
        channel,
        ...(keywords ? { context: { keywords } } : {}),
      }),
    (x) => x.statusCode === 200,
  );
  return r.json() as {
    decision_id: string;
    campaign_id: string;
    price_micros: number;
    delivery_tag: string;
    tracking: { impression_url: string };
  };
};

describe('impressions', () => {
  const confirmed = new Map<string, number>(); // decision → price

  it('targets keywords from the request and from the thread’s latest messages', async () => {
    const byContext = await offer('u4', 'webchat', ['haircut']);
    const byThread = await offer('u5', 'webchat');
    const plain = await offer('u3', 'webchat');
    expect(byContext.price_micros).toBe(7000);
    expect(byThread.price_micros).toBe(7000);
    expect(plain.price_micros).toBe(2000);
    const r = await call('POST', '/v1/impressions', t.keys.adserver, { tokens: [byContext.delivery_tag] });
    expect(r.json()).toEqual({ accepted: 1, rejected: [] });
    confirmed.set(byContext.decision_id, byContext.price_micros);
  });

  it('POST /v1/impressions records valid tokens once and refuses forged, altered and expired ones', async () => {
    const a = await offer('u1', 'webchat');
    const b = await offer('u2', 'webchat');
    const facts = (verifyOffer(key, a.delivery_tag, Date.now(), 600_000) as { facts: OfferFacts }).facts;
    const expired = signOffer(key, {
      ...facts,
      decision_id: `${facts.decision_id}x`,
      at_ms: Date.now() - 700_000,
    });
    const altered = a.delivery_tag.replace(`.${facts.price_micros.toString(36)}.`, '.1.');
    const forged = signOffer(Buffer.alloc(32, 1), { ...facts, decision_id: 'd_forged' });
    expect(
      (await call('POST', '/v1/impressions', t.keys.marketer, { tokens: [a.delivery_tag] })).statusCode,
    ).toBe(403);
    const r = await call('POST', '/v1/impressions', t.keys.adserver, {
      tokens: [a.delivery_tag, a.delivery_tag, b.delivery_tag, expired, altered, forged, 'nope'],
    });
    expect(r.statusCode).toBe(202);
    expect(r.json()).toEqual({
      accepted: 3,
      rejected: [
        expect.objectContaining({ index: 3, error: 'expired' }),
        expect.objectContaining({ index: 4, error: 'bad_signature' }),
        expect.objectContaining({ index: 5, error: 'bad_signature' }),
        expect.objectContaining({ index: 6, error: 'malformed' }),
      ],
    });
    // Replayed later through the batch and the impression URL: still the same impression.
    expect(
      (await call('POST', '/v1/impressions', t.keys.adserver, { tokens: [b.delivery_tag] })).statusCode,
    ).toBe(202);
    expect((await t.app.inject({ method: 'GET', url: `/v1/impressions/${a.delivery_tag}` })).statusCode).toBe(
      204,
    );
    // A token of long ids makes a long impression URL; it is recorded all the same (the same offer).
    const long = signOffer(key, { ...facts, thread_id: 't'.repeat(128) });
    expect(long.length).toBeGreaterThan(200);
    expect((await t.app.inject({ method: 'GET', url: `/v1/impressions/${long}` })).statusCode).toBe(204);
    for (const bad of [expired, altered, forged]) {
      const g = await t.app.inject({ method: 'GET', url: `/v1/impressions/${bad}` });
      expect(g.statusCode).toBe(400);
      expect(g.json().error).toBe('PARLEY_ERR_BAD_REQUEST');
    }
    expect((await call('POST', '/v1/impressions', t.keys.adserver, { tokens: [] })).statusCode).toBe(400);
    confirmed.set(a.decision_id, a.price_micros).set(b.decision_id, b.price_micros);
  });

  it('records the impression from signed Messenger echoes and WhatsApp statuses carrying the tag', async () => {
    const m = await offer('u1', 'messenger');
    const w = await offer('u2', 'whatsapp');
    for (const mid of ['mid.1:a', 'mid.1:a', 'mid.2:b'])
      expect((await webhook('messenger', messengerEcho(m.delivery_tag, mid))).statusCode).toBe(200);
    expect((await webhook('whatsapp', whatsappStatuses(w.delivery_tag))).statusCode).toBe(200);
    // A forged tag on a signed delivery records nothing.
    const forged = m.delivery_tag.replace(/\.[^.]+$/, '.AAAAAAAAAAAAAAAAAAAAAA');
    expect((await webhook('messenger', messengerEcho(forged, 'mid.3:c'))).statusCode).toBe(200);
    confirmed.set(m.decision_id, m.price_micros).set(w.decision_id, w.price_micros);
    const stored = await waitFor(storedServed, (l) => l.length >= confirmed.size);
    await new Promise((r) => setTimeout(r, 300));
    const final = await storedServed();
    expect(final.map((s) => s.d).sort()).toEqual([...confirmed.keys()].sort());
    for (const s of stored) expect(s.event_id).toBe(derivedEventId('impression', s.d));
  });

  it('records ghost offers for a holdout’s control users and marks treatment offers, off the answer path', async () => {
    const users = Array.from({ length: 30 }, (_, i) => `h${i}`);
    const talk = users.map((u) => ({
      event_id: `talk-b9-${u}`,
      type: 'message.received',
      occurred_at: new Date(now - 60_000).toISOString(),
      business_id: 'b9',
      user_id: u,
      channel: 'webchat',
      props: { text_length: 4 },
    }));
    expect((await call('POST', '/v1/events', t.keys.ingest, talk)).statusCode).toBe(202);
    const made = await call('POST', '/v1/campaigns', t.keys.marketer, {
      business_id: 'b9',
      name: 'Lift',
      status: 'active',
      creative: { text: 'Lift' },
      schedule: { start: new Date(now - 3600_000).toISOString() },
      budget: { total_micros: 1_000_000 },
      bid: { cpm_micros: 1_000_000 },
      frequency_cap: { max: 1, per_seconds: 60 },
      pacing: 'asap',
      holdout: 0.5,
    });
    expect(made.statusCode).toBe(201);
    const answers = new Map<string, number>();
    for (const u of users) {
      const r = await waitFor(
        () =>
          call('POST', '/v1/decisions', t.keys.adserver, {
            user_id: u,
            business_id: 'b9',
            channel: 'webchat',
            explain: true,
          }),
        (x) => ['chosen', 'holdout'].includes(x.json().candidates?.[0]?.reason),
      );
      answers.set(u, r.json().decision_id === null ? 0 : 1);
    }
    const stored = await waitFor(
      async () => {
        const rs = await t.store.client.query({
          query: `SELECT user_id, JSONExtractString(props, 'group') AS g FROM ${t.store.database}.events FINAL
            WHERE type = 'sponsored.withheld' AND business_id = 'b9'`,
          format: 'JSONEachRow',
        });
        return (await rs.json()) as { user_id: string; g: string }[];
      },
      (l) => l.length === users.length,
    );
    for (const r of stored) expect(r.g).toBe(answers.get(r.user_id) === 1 ? 'treatment' : 'control');
    expect(stored.some((r) => r.g === 'control')).toBe(true);
    expect(stored.some((r) => r.g === 'treatment')).toBe(true);
  });

  it('shows spend in the campaign report equal to the confirmed offers’ prices, to the micro', async () => {
    const from = new Date(now - 7200_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const r = await call('GET', `/v1/reports/campaigns?from=${from}&to=${to}&business_id=b1`, t.keys.analyst);
    expect(r.statusCode).toBe(200);
    const rows = r.json().campaigns as { served: number; spend_micros: number; targeting_kind: string }[];
    const spent = [...confirmed.values()].reduce((a, p) => a + p, 0);
    expect(rows.reduce((a, x) => a + x.spend_micros, 0)).toBe(spent);
    expect(rows.reduce((a, x) => a + x.served, 0)).toBe(confirmed.size);
    // Per targeting kind: the keyword campaign is contextual, the other targets nobody in particular.
    expect(rows.map((x) => x.targeting_kind).sort()).toEqual(['contextual', 'none']);
    const kinds = r.json().by_targeting as {
      targeting_kind: string;
      spend_micros: number;
      campaigns: number;
    }[];
    expect(kinds.map((k) => k.targeting_kind)).toEqual(['contextual', 'segment', 'both', 'none']);
    expect(kinds.reduce((a, k) => a + k.spend_micros, 0)).toBe(spent);
    expect(kinds.find((k) => k.targeting_kind === 'segment')).toMatchObject({
      campaigns: 0,
      spend_micros: 0,
    });
    const csv = await t.app.inject({
      method: 'GET',
      url: `/v1/reports/campaigns?from=${from}&to=${to}&business_id=b1`,
      headers: { authorization: `Bearer ${t.keys.analyst}`, accept: 'text/csv' },
    });
    expect(csv.body.split('\n')[0]).toContain('targeting_kind');
  });
});
