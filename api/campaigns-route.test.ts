import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCampaignListQuery } from '../core/campaigns/store.ts';
import { createAuth } from '../core/http/auth.ts';
import { type App, createHttp } from '../core/http/fastify.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { createSegmentStore } from '../core/segments/store.ts';
import { createStore, type Store } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { campaignsRoute } from './campaigns-route.ts';

const key = (role: string) => `pk_test_${role}_${randomBytes(12).toString('hex')}`;
const keys = { marketer: key('marketer'), marketerB2: key('marketerb2'), adserver: key('adserver') };
let dir: string;
let store: Store;
let app: App;
let changes = 0;
const seg = { big: '', small: '', otherBusiness: '', global: '' };

const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, k = keys.marketer) =>
  app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${k}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });

const campaign = (over: Record<string, unknown> = {}) => ({
  business_id: 'b1',
  name: 'Spring cut',
  status: 'active',
  creative: { text: '20% off a spring cut', buttons: [{ title: 'Book' }] },
  targeting: { segments_all: [seg.big], channels: ['whatsapp'] },
  schedule: { start: '2026-03-01T00:00:00Z', end: '2026-04-01T00:00:00Z' },
  budget: { total_micros: 50_000_000, daily_micros: 5_000_000 },
  bid: { cpc_micros: 400_000 },
  frequency_cap: { max: 2, per_seconds: 86_400 },
  pacing: 'even',
  ...over,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-cmp-api-'));
  const logger = createLogger({ level: 'silent' });
  store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
  await migrate(store, logger);
  const now = Date.now();
  // u1..u3 messaged b1; u8 and u9 messaged b2.
  await store.client.insert({
    table: `${store.database}.events`,
    values: ['u1', 'u2', 'u3', 'u8', 'u9'].map((u, i) => ({
      event_id: `e${i}`,
      type: 'message.received',
      occurred_at: new Date(now - 60_000).toISOString(),
      business_id: u === 'u8' || u === 'u9' ? 'b2' : 'b1',
      user_id: u,
      thread_id: `t_${u}`,
      channel: 'whatsapp',
      props: '{}',
      ingested_at: new Date(now).toISOString(),
    })),
    format: 'JSONEachRow',
  });
  const segments = createSegmentStore(store);
  seg.big = (
    await segments.create({ name: 'all b1', business_id: 'b1', rule: { performed: 'message.received' } })
  ).id;
  seg.small = (
    await segments.create({ name: 'ordered', business_id: 'b1', rule: { performed: 'order.placed' } })
  ).id;
  seg.otherBusiness = (
    await segments.create({ name: 'b2', business_id: 'b2', rule: { performed: 'message.received' } })
  ).id;
  seg.global = (
    await segments.create({ name: 'everyone', business_id: null, rule: { performed: 'message.received' } })
  ).id;
  const auth = createAuth({
    keys: [
      { key: keys.marketer, role: 'marketer' },
      { key: keys.marketerB2, role: 'marketer', businesses: ['b2'] },
      { key: keys.adserver, role: 'adserver' },
    ],
  });
  app = await createHttp({ logger, bodyLimit: 1 << 20, metrics: createMetrics() });
  await campaignsRoute(app, {
    store,
    auth,
    minAudienceSize: 2,
    onChange: () => {
      changes++;
    },
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('campaigns API', () => {
  let id: string;

  it('creates, reads, lists, updates and deletes a campaign', async () => {
    const res = await call('POST', '/v1/campaigns', campaign());
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({
      name: 'Spring cut',
      version: 1,
      bid: { cpc_micros: 400_000 },
      pacing: 'even',
      holdout: 0,
    });
    expect(body.id).toMatch(/^cmp_[0-9a-f]{32}$/);
    expect(changes).toBe(1);
    id = body.id;
    expect((await call('GET', `/v1/campaigns/${id}`)).json()).toMatchObject({ id, business_id: 'b1' });
    expect((await call('GET', '/v1/campaigns')).json().campaigns.map((c: { id: string }) => c.id)).toEqual([
      id,
    ]);
    expect((await call('GET', '/v1/campaigns?business_id=b2')).json().campaigns).toEqual([]);

    const put = await call(
      'PUT',
      `/v1/campaigns/${id}`,
      campaign({ status: 'paused', pacing: 'asap', holdout: 0.2 }),
    );
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({
      version: 2,
      status: 'paused',
      pacing: 'asap',
      holdout: 0.2,
      created_at: body.created_at,
    });
    const moved = await call('PUT', `/v1/campaigns/${id}`, campaign({ business_id: 'b2', targeting: {} }));
    expect(moved.statusCode).toBe(422);
    expect(moved.json().message).toMatch(/business_id cannot change/);

    expect((await call('DELETE', `/v1/campaigns/${id}`)).statusCode).toBe(204);
    expect((await call('GET', `/v1/campaigns/${id}`)).statusCode).toBe(404);
    expect((await call('GET', '/v1/campaigns')).json().campaigns).toEqual([]);
    expect(changes).toBe(3);
  });

  it('refuses a segment below the minimum audience size, saying its size and the minimum', async () => {
    const res = await call('POST', '/v1/campaigns', campaign({ targeting: { segments_any: [seg.small] } }));
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({
      error: 'PARLEY_ERR_UNPROCESSABLE',
      details: { segment_id: seg.small, size: 0, min_audience_size: 2 },
    });
    expect(res.json().message).toMatch(/has 0 members; .* at least 2/);
    // As an exclusion a small segment is fine.
    const excl = await call(
      'POST',
      '/v1/campaigns',
      campaign({ targeting: { segments_all: [seg.global], segments_none: [seg.small] } }),
    );
    expect(excl.statusCode).toBe(201);
  });

  it('refuses segments that do not exist or belong to another business', async () => {
    const missing = await call(
      'POST',
      '/v1/campaigns',
      campaign({ targeting: { segments_all: ['seg_nope'] } }),
    );
    expect(missing.statusCode).toBe(422);
    expect(missing.json().message).toBe('targeting: segment seg_nope does not exist');
    const other = await call(
      'POST',
      '/v1/campaigns',
      campaign({ targeting: { segments_all: [seg.otherBusiness] } }),
    );
    expect(other.statusCode).toBe(422);
    expect(other.json().message).toMatch(/belongs to business b2, not b1/);
  });

  it('tells a key limited to businesses nothing of segments it may not see', async () => {
    const asB2 = (id: string) =>
      call(
        'POST',
        '/v1/campaigns',
        campaign({ business_id: 'b2', targeting: { segments_all: [id] } }),
        keys.marketerB2,
      );
    const hidden = await asB2(seg.small); // b1's, and below the minimum size
    const missing = await asB2('seg_nope');
    expect(hidden.statusCode).toBe(422);
    expect(hidden.json()).toEqual({
      ...missing.json(),
      message: `targeting: segment ${seg.small} does not exist`,
      details: { segment_id: seg.small },
    });
    expect((await asB2(seg.global)).json().message).toBe(`targeting: segment ${seg.global} does not exist`);
  });

  it('accepts only http and https button URLs', async () => {
    for (const url of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'file:///etc/passwd']) {
      const res = await call(
        'POST',
        '/v1/campaigns',
        campaign({ creative: { text: 'x', buttons: [{ title: 'Go', url }] } }),
      );
      expect(res.statusCode, url).toBe(400);
      expect(res.json().message).toMatch(/http or https/);
    }
    const ok = await call(
      'POST',
      '/v1/campaigns',
      campaign({ creative: { text: 'x', buttons: [{ title: 'Go', url: 'https://example.com/book' }] } }),
    );
    expect(ok.statusCode).toBe(201);
  });

  it('validates dates, money, caps and bids with messages a marketer can act on', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { schedule: { start: '2026-03-02T00:00:00Z', end: '2026-03-01T00:00:00Z' } },
        /schedule.end .* must be after/,
      ],
      [
        { schedule: { start: 'tomorrow' } },
        /schedule.start: expected ISO-8601 with a zone, e.g. 2026-11-20T00:00:00Z/,
      ],
      [{ budget: { total_micros: 1_000, daily_micros: 2_000 } }, /daily_micros \(2000\) must not exceed/],
      [{ budget: { total_micros: -5 } }, /total_micros must be positive/],
      [{ budget: { total_micros: 1.5 } }, /whole number of micros/],
      [{ bid: { cpm_micros: 0 } }, /cpm_micros must be positive/],
      [{ bid: { cpm_micros: 1, cpc_micros: 1 } }, /bid/],
      [{ frequency_cap: { max: 0, per_seconds: 60 } }, /frequency_cap.max must be a positive integer/],
      [{ pacing: 'fast' }, /pacing/],
      [{ holdout: 0.6 }, /holdout must be at most 0.5/],
      [{ holdout: -0.1 }, /holdout must be at least 0/],
      [{ holdout: '10%' }, /holdout must be a number/],
      [{ targeting: { segments_all: [seg.big], segments_none: [seg.big] } }, /both required and excluded/],
      // A typo must never create a campaign without its targeting.
      [{ targeting: { segment_all: [seg.big] } }, /unknown key "segment_all"; did you mean "segments_all"\?/],
      [{ creative: { text: 'hi', button: [] } }, /unknown key "button"; did you mean "buttons"\?/],
      [
        { frequency_cap: { max: 1, per_second: 60 } },
        /unknown key "per_second"; did you mean "per_seconds"\?/,
      ],
    ];
    for (const [over, msg] of cases) {
      const res = await call('POST', '/v1/campaigns', campaign(over));
      expect(res.statusCode, JSON.stringify(over)).toBe(400);
      expect(res.json().error).toBe('PARLEY_ERR_VALIDATION');
      expect(res.json().message).toMatch(msg);
    }
  });

  it('limits business-scoped keys to their businesses and needs the marketer role', async () => {
    const res = await call('POST', '/v1/campaigns', campaign(), keys.marketerB2);
    expect(res.statusCode).toBe(403);
    const own = await call(
      'POST',
      '/v1/campaigns',
      campaign({ business_id: 'b2', targeting: { segments_all: [seg.otherBusiness] } }),
      keys.marketerB2,
    );
    expect(own.statusCode).toBe(201);
    const listed = (await call('GET', '/v1/campaigns', undefined, keys.marketerB2)).json().campaigns;
    expect(listed.map((c: { business_id: string }) => c.business_id)).toEqual(['b2']);
    const b1 = (await call('GET', '/v1/campaigns'))
      .json()
      .campaigns.find((c: { business_id: string }) => c.business_id === 'b1');
    const hidden = await call('GET', `/v1/campaigns/${b1.id}`, undefined, keys.marketerB2);
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json().message).toBe(`No campaign ${b1.id}`);
    expect((await call('GET', '/v1/campaigns?business_id=b1', undefined, keys.marketerB2)).statusCode).toBe(
      403,
    );
    expect((await call('GET', '/v1/campaigns', undefined, keys.adserver)).statusCode).toBe(403);
  });

  it('builds the list query with bound parameters', () => {
    const q = buildCampaignListQuery('parley', { businesses: ['b1'] });
    expect(q.query).toContain('FINAL');
    expect(q.query).toContain('business_id IN {businesses:Array(String)}');
    expect(q.query_params).toEqual({ businesses: ['b1'] });
  });
});

describe('campaigns in the OpenAPI document', () => {
  it('documents holdout with its range, default and an example', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const body = doc.paths['/v1/campaigns'].post.requestBody.content['application/json'].schema;
    expect(body.properties.holdout).toMatchObject({ minimum: 0, maximum: 0.5, default: 0, example: 0.1 });
    expect(body.properties.holdout.description).toMatch(/control group/);
  });
});
