// The webhook routes through inject(): handshake, signatures, durability answers and metrics, on a
// real embedded bus.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../../core/bus/local.ts';
import type { Bus, OutMessage } from '../../core/bus/types.ts';
import { ConfigError, parseConfig } from '../../core/config.ts';
import { ParleyError } from '../../core/errors.ts';
import { EventFeed } from '../../core/events/feed.ts';
import { type App, createHttp } from '../../core/http/fastify.ts';
import { createLogger } from '../../core/log.ts';
import { type Metrics, createMetrics } from '../../core/metrics.ts';
import { type WebhookDeps, webhooksRoute } from './route.ts';
import { signBody } from './signature.ts';
import { HASH_SECRET, fixtureNames, fixtureText, normalize, platformOf } from './test-helpers.ts';

const APP_SECRET = 'meta-app-secret-for-route-tests';
const VERIFY = 'verify-token-for-route-tests';
const topics = { events: 'parley.events', dlq: 'parley.events.dlq' };
const logger = createLogger({ level: 'silent' });

let bus: Bus;
let published: { topic: string; messages: OutMessage[] }[] = [];
let failing = false;

async function build(over: Partial<WebhookDeps> = {}): Promise<{ app: App; metrics: Metrics }> {
  const metrics = createMetrics();
  const app = await createHttp({ logger, bodyLimit: 1024 * 1024, metrics });
  const recording: Bus = {
    ...bus,
    publish: async (topic, messages) => {
      if (failing) throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE');
      const written = await bus.publish(topic, messages);
      published.push({ topic, messages });
      return written;
    },
  };
  await webhooksRoute(app, {
    feed: new EventFeed(recording),
    metrics,
    logger,
    topics,
    normalize,
    meta: { appSecret: APP_SECRET, verifyToken: VERIFY, businessMap: {} },
    hashSecret: HASH_SECRET,
    ...over,
  });
  await app.ready();
  return { app, metrics };
}

let t: { app: App; metrics: Metrics };
beforeAll(async () => {
  bus = await createLocalBus({ dir: join(await mkdtemp(join(tmpdir(), 'parley-wh-')), 'log'), logger });
  await bus.ensureTopics([{ name: topics.events, partitions: 2 }, { name: topics.dlq }]);
  t = await build();
});
afterAll(async () => {
  await t.app.close();
  await bus.close();
});

const post = (
  app: App,
  platform: string,
  body: string | Buffer,
  signature: string | null = signBody(APP_SECRET, body),
) =>
  app.inject({
    method: 'POST',
    url: `/v1/webhooks/${platform}`,
    headers: {
      'content-type': 'application/json',
      ...(signature === null ? {} : { 'x-hub-signature-256': signature }),
    },
    payload: body,
  });
const events = () =>
  published
    .filter((p) => p.topic === topics.events)
    .flatMap((p) => p.messages.map((m) => JSON.parse(String(m.value))));

describe('webhook settings', () => {
  it('reads the business map from PARLEY_META_BUSINESS_MAP and refuses a malformed one', () => {
    expect(
      parseConfig({ PARLEY_META_BUSINESS_MAP: '{"104512345678901":"biz_barber_42"}' }).meta.businessMap,
    ).toEqual({ '104512345678901': 'biz_barber_42' });
    expect(parseConfig({}).meta.businessMap).toEqual({});
    expect(() => parseConfig({ PARLEY_META_BUSINESS_MAP: '["a"]' })).toThrow(ConfigError);
    expect(() => parseConfig({ PARLEY_META_BUSINESS_MAP: '{"a":' })).toThrow(/PARLEY_META_BUSINESS_MAP/);
  });

  it('documents the routes in the OpenAPI document', () => {
    const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    for (const p of ['messenger', 'whatsapp', 'instagram']) {
      expect(Object.keys(doc.paths[`/v1/webhooks/${p}`]).sort()).toEqual(['get', 'post']);
    }
  });
});

describe('webhook handshake', () => {
  it('answers hub.challenge as text for the right token, 403 otherwise', async () => {
    for (const platform of ['messenger', 'whatsapp', 'instagram']) {
      const ok = await t.app.inject({
        url: `/v1/webhooks/${platform}?hub.mode=subscribe&hub.verify_token=${VERIFY}&hub.challenge=1158201444`,
      });
      expect(ok.statusCode).toBe(200);
      expect(ok.body).toBe('1158201444');
      expect(ok.headers['content-type']).toMatch(/^text\/plain/);
    }
    const wrong = await t.app.inject({
      url: '/v1/webhooks/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1',
    });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json().error).toBe('PARLEY_ERR_FORBIDDEN');
    const mode = await t.app.inject({
      url: `/v1/webhooks/messenger?hub.mode=unsubscribe&hub.verify_token=${VERIFY}&hub.challenge=1`,
    });
    expect(mode.statusCode).toBe(403);
    expect((await t.app.inject({ url: '/v1/webhooks/messenger' })).statusCode).toBe(403);
  });
});

describe('webhook deliveries', () => {
  it('accepts every signed fixture and answers once the events are on the bus', async () => {
    published = [];
    let expected = 0;
    for (const name of fixtureNames()) {
      const res = await post(t.app, platformOf(name), fixtureText(name));
      expect(res.statusCode, name).toBe(200);
      const body = res.json();
      expect(body.rejected, name).toBe(0);
      expected += body.accepted;
    }
    expect(events()).toHaveLength(expected);
    expect(expected).toBeGreaterThan(40);
    // Keyed by user, canonical, and without raw text.
    for (const m of published.filter((p) => p.topic === topics.events).flatMap((p) => p.messages)) {
      const e = JSON.parse(String(m.value));
      expect(m.key).toBe(e.user_id);
      expect(e.props.text).toBeUndefined();
    }
    const metrics = await t.metrics.registry.getSingleMetricAsString('parley_webhook_items_ignored_total');
    expect(metrics).toContain('platform="whatsapp",kind="status:failed"} 1');
    expect(metrics).toContain('platform="messenger",kind="reaction"} 1');
    expect(await t.metrics.registry.getSingleMetricAsString('parley_ingest_events_accepted_total')).toContain(
      'source="webhook_whatsapp"',
    );
  });

  it('refuses unsigned (401) and forged or altered (403) deliveries and publishes nothing', async () => {
    published = [];
    const body = fixtureText('messenger-messages.json');
    const unsigned = await post(t.app, 'messenger', body, null);
    expect(unsigned.statusCode).toBe(401);
    expect(unsigned.json().error).toBe('PARLEY_ERR_UNAUTHORIZED');
    const forged = await post(t.app, 'messenger', body, signBody('not-the-app-secret', body));
    expect(forged.statusCode).toBe(403);
    expect(forged.json().error).toBe('PARLEY_ERR_FORBIDDEN');
    const altered = await post(
      t.app,
      'messenger',
      body.replace('Friday', 'Monday'),
      signBody(APP_SECRET, body),
    );
    expect(altered.statusCode).toBe(403);
    expect(published).toEqual([]);
  });

  it('verifies the escaped-unicode bytes Meta signs, not a re-encoding of them', async () => {
    published = [];
    const escaped = fixtureText('whatsapp-text-referral.json');
    expect(escaped).toContain('Voil\\u00e0');
    const ok = await post(t.app, 'whatsapp', escaped);
    expect(ok.statusCode).toBe(200);
    expect(events().map((e) => e.props.text_length)).toEqual([55, undefined, 26]);
    const raw = Buffer.from(JSON.stringify(JSON.parse(escaped)), 'utf8'); // é as UTF-8 bytes
    expect(raw.toString()).toContain('Voilà');
    expect((await post(t.app, 'whatsapp', raw, signBody(APP_SECRET, escaped))).statusCode).toBe(403);
    expect((await post(t.app, 'whatsapp', raw)).statusCode).toBe(200);
  });

  it('a repeated delivery publishes the same event ids', async () => {
    published = [];
    const body = fixtureText('whatsapp-statuses.json');
    await post(t.app, 'whatsapp', body);
    const first = events().map((e) => e.event_id);
    published = [];
    await post(t.app, 'whatsapp', body);
    expect(events().map((e) => e.event_id)).toEqual(first);
  });

  it("signed but malformed bodies are 400s; the wrong platform's body is refused", async () => {
    expect((await post(t.app, 'messenger', '{"object":')).json().error).toBe('PARLEY_ERR_INVALID_JSON');
    expect((await post(t.app, 'messenger', Buffer.from([0x7b, 0xff, 0x7d]))).json().error).toBe(
      'PARLEY_ERR_INVALID_UTF8',
    );
    const wrong = await post(t.app, 'messenger', fixtureText('instagram-messaging.json'));
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toMatch(/object "page"/);
  });

  it('answers 503 and acknowledges nothing when the bus cannot take the events', async () => {
    failing = true;
    try {
      const res = await post(t.app, 'messenger', fixtureText('messenger-receipts.json'));
      expect(res.statusCode).toBe(503);
      expect(res.json().error).toBe('PARLEY_ERR_BUS_UNAVAILABLE');
    } finally {
      failing = false;
    }
  });

  it('without an app secret, deliveries are refused as not configured; WhatsApp also needs the hash secret', async () => {
    const noSecret = await build({ meta: { verifyToken: VERIFY, businessMap: {} } });
    const res = await post(noSecret.app, 'messenger', fixtureText('messenger-receipts.json'));
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      error: 'PARLEY_ERR_WEBHOOK_NOT_CONFIGURED',
      message: expect.stringMatching(/PARLEY_META_APP_SECRET/),
    });
    expect(
      (
        await noSecret.app.inject({
          url: `/v1/webhooks/messenger?hub.mode=subscribe&hub.verify_token=${VERIFY}&hub.challenge=7`,
        })
      ).statusCode,
    ).toBe(200);
    await noSecret.app.close();

    const noHash = await build({ hashSecret: undefined });
    const wa = await post(noHash.app, 'whatsapp', fixtureText('whatsapp-order.json'));
    expect(wa.statusCode).toBe(503);
    expect(wa.json().message).toMatch(/PARLEY_HASH_SECRET/);
    expect((await post(noHash.app, 'messenger', fixtureText('messenger-receipts.json'))).statusCode).toBe(
      200,
    );
    await noHash.app.close();
  });
});
