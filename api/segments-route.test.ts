import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../core/bus/local.ts';
import type { Bus, InMessage } from '../core/bus/types.ts';
import { createAuth } from '../core/http/auth.ts';
import { type App, createHttp } from '../core/http/fastify.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { type MembershipMessage, membershipMessageSchema } from '../core/segments/membership.ts';
import { createStore, type Store } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { segmentsRoute } from './segments-route.ts';

const TOPIC = 'test.parley.membership';
const key = (role: string) => `pk_test_${role}_${randomBytes(12).toString('hex')}`;
const keys = { marketer: key('marketer'), marketerB1: key('marketerb1'), analyst: key('analyst') };
let dir: string;
let store: Store;
let bus: Bus;
let app: App;
const received: MembershipMessage[] = [];
let stopSub: () => Promise<void>;

const now = Date.now();
const at = (agoSec: number) => new Date(now - agoSec * 1000).toISOString();

async function insertEvents(
  rows: { id: string; type: string; user: string; business?: string; ago: number; props?: object }[],
) {
  await store.client.insert({
    table: `${store.database}.events`,
    values: rows.map((r) => ({
      event_id: r.id,
      type: r.type,
      occurred_at: at(r.ago),
      business_id: r.business ?? 'b1',
      user_id: r.user,
      thread_id: `t_${r.user}`,
      channel: 'whatsapp',
      props: JSON.stringify(r.props ?? {}),
      ingested_at: new Date().toISOString(),
    })),
    format: 'JSONEachRow',
  });
}

const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, k = keys.marketer) =>
  app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${k}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });

const rule3 = { performed: 'message.received', count: { gte: 3 }, within_seconds: 3600 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-seg-api-'));
  const logger = createLogger({ level: 'silent' });
  store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
  await migrate(store, logger);
  bus = await createLocalBus({ dir: join(dir, 'log'), logger });
  await bus.ensureTopics([{ name: TOPIC, partitions: 2, compacted: true }]);
  const sub = await bus.subscribe({
    groupId: 'test-watch',
    topics: [TOPIC],
    maxWaitMs: 5,
    handler: async (b) => {
      for (const m of b.messages as InMessage[])
        received.push(membershipMessageSchema.parse(JSON.parse(m.value.toString())));
    },
  });
  stopSub = () => sub.stop();
  const auth = createAuth({
    keys: [
      { key: keys.marketer, role: 'marketer' },
      { key: keys.marketerB1, role: 'marketer', businesses: ['b1'] },
      { key: keys.analyst, role: 'analyst' },
    ],
  });
  app = await createHttp({ logger, bodyLimit: 1 << 20, metrics: createMetrics() });
  await segmentsRoute(app, { store, bus, auth, membershipTopic: TOPIC, minAudienceSize: 2 });
  await app.ready();
  // u1: 3 messages in the last hour; u2: 3 messages but one is 2h old; u3: 4 recent; u9 in b2.
  await insertEvents([
    ...[10, 20, 30].map((ago, i) => ({ id: `a${i}`, type: 'message.received', user: 'u1', ago })),
    ...[10, 20, 7200].map((ago, i) => ({ id: `b${i}`, type: 'message.received', user: 'u2', ago })),
    ...[10, 20, 30, 40].map((ago, i) => ({ id: `c${i}`, type: 'message.received', user: 'u3', ago })),
    ...[10, 20, 30].map((ago, i) => ({
      id: `d${i}`,
      type: 'message.received',
      user: 'u9',
      business: 'b2',
      ago,
    })),
    { id: 'e0', type: 'order.placed', user: 'u3', ago: 5, props: { value: 40 } },
  ]);
});

afterAll(async () => {
  await stopSub?.();
  await app?.close();
  await bus?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

async function waitFor(pred: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('segments API', () => {
  let id: string;

  it('creates a segment, initialises membership and announces it', async () => {
    const res = await call('POST', '/v1/segments', { name: 'chatty', business_id: 'b1', rule: rule3 });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ name: 'chatty', business_id: 'b1', rule: rule3, version: 1, size: 2 });
    id = body.id;
    await waitFor(() => received.filter((m) => m.segment_id === id).length === 2);
    expect(
      received
        .filter((m) => m.segment_id === id)
        .map((m) => [m.type, m.user_id, m.business_id])
        .sort(),
    ).toEqual([
      ['segment.entered', 'u1', 'b1'],
      ['segment.entered', 'u3', 'b1'],
    ]);
  });

  it('reads, sizes and pages members', async () => {
    expect((await call('GET', `/v1/segments/${id}`)).json()).toMatchObject({
      id,
      name: 'chatty',
      version: 1,
    });
    const size = (await call('GET', `/v1/segments/${id}/size`)).json();
    expect(size).toMatchObject({ size: 2, min_audience_size: 2, targetable: true });
    expect(Math.abs(Date.parse(size.as_of) - Date.now())).toBeLessThan(10_000);
    const p1 = (await call('GET', `/v1/segments/${id}/members?limit=1`)).json();
    // Each since is when the member entered: their third message within the hour.
    expect(p1.members).toEqual([{ user_id: 'u1', since: at(10) }]);
    expect(p1.next).toEqual(expect.any(String));
    const p2 = (await call('GET', `/v1/segments/${id}/members?limit=1&cursor=${p1.next}`)).json();
    expect(p2.members).toEqual([{ user_id: 'u3', since: at(20) }]);
    const p3 = (await call('GET', `/v1/segments/${id}/members?limit=1&cursor=${p2.next}`)).json();
    expect(p3).toEqual({ members: [], next: null });
    expect((await call('GET', `/v1/segments/${id}/members?cursor=%%%`)).statusCode).toBe(400);
    expect((await call('GET', '/v1/segments')).json().segments.map((s: { id: string }) => s.id)).toContain(
      id,
    );
  });

  it('updates the rule and announces only the differences', async () => {
    const before = received.length;
    const rule = { all: [rule3, { not: { performed: 'order.placed' } }] };
    const res = await call('PUT', `/v1/segments/${id}`, {
      name: 'chatty, no order',
      business_id: 'b1',
      rule,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ version: 2, size: 1, rule });
    await waitFor(() => received.length === before + 1);
    expect(received.at(-1)).toMatchObject({ type: 'segment.exited', segment_id: id, user_id: 'u3' });
    expect((await call('GET', `/v1/segments/${id}/size`)).json()).toMatchObject({
      size: 1,
      targetable: false,
    });
  });

  it('previews a rule at a time without saving it', async () => {
    const res = await call('POST', '/v1/segments/preview', { business_id: 'b1', rule: rule3 });
    expect(res.json()).toMatchObject({ size: 2 });
    expect(res.json().sample.sort()).toEqual(['u1', 'u3']);
    // Two hours ago nobody had sent a message yet except u2's first one.
    const past = await call('POST', '/v1/segments/preview', {
      business_id: 'b1',
      rule: { performed: 'message.received' },
      as_of: at(3600),
    });
    expect(past.json()).toMatchObject({ size: 1, sample: ['u2'], as_of: at(3600) });
    const global = await call('POST', '/v1/segments/preview', { rule: rule3 });
    expect(global.json().size).toBe(3);
  });

  it('compares with whole numbers beyond 2^53 as JSON carries them (1e20), never a 500', async () => {
    await insertEvents([
      {
        id: 'big1',
        type: 'order.placed',
        user: 'big_u1',
        ago: 60,
        props: { value: 1, n: 25483741716715910 },
      },
      { id: 'big2', type: 'order.placed', user: 'big_u2', ago: 60, props: { value: 1, n: 1e21 } },
    ]);
    const size = async (where: object) => {
      const res = await call('POST', '/v1/segments/preview', {
        business_id: 'b1',
        rule: { performed: 'order.placed', where },
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().size;
    };
    expect(await size({ 'props.n': { in: [25483741716715910, 1] } })).toBe(1);
    expect(await size({ 'props.n': 1e21 })).toBe(1);
    expect(await size({ 'props.n': { gte: 1e20 } })).toBe(1);
    expect(await size({ 'props.n': { gt: -1e300, lt: 1e300 } })).toBe(2);
    const saved = await call('POST', '/v1/segments', {
      name: 'Big numbers',
      business_id: 'b1',
      rule: { performed: 'order.placed', where: { 'props.n': { gte: 1e20 } } },
    });
    expect(saved.statusCode, saved.body).toBe(201);
    expect(saved.json().size).toBe(1);
    expect((await call('DELETE', `/v1/segments/${saved.json().id}`)).statusCode).toBe(204);
  });

  it('answers bad rules with 400 and a message a marketer can act on', async () => {
    const res = await call('POST', '/v1/segments', {
      name: 'x',
      rule: { all: [{ performed: 'message.recieved' }, { performed: 'optin', count: { gte: 3, lte: 1 } }] },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.error).toBe('PARLEY_ERR_VALIDATION');
    expect(body.message).toContain('unknown event type "message.recieved"; valid types:');
    expect(body.message).toContain('lte (1) is below gte (3)');
    const field = await call('POST', '/v1/segments/preview', {
      rule: { performed: 'optin', where: { colour: 'red' } },
    });
    expect(field.statusCode).toBe(400);
    expect(field.json().message).toContain('fields are "channel" and "props.<name>"');
    expect((await call('POST', '/v1/segments', { name: '', rule: rule3 })).statusCode).toBe(400);
    expect((await call('POST', '/v1/segments/preview', { rule: rule3, as_of: 'yesterday' })).statusCode).toBe(
      400,
    );
  });

  it('refuses unknown keys (a typo must never widen a segment to every business)', async () => {
    const typo = await call('POST', '/v1/segments', { name: 'x', busines_id: 'b1', rule: rule3 });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().message).toMatch(/unknown key "busines_id"; did you mean "business_id"\?/);
    const inRule = await call('POST', '/v1/segments/preview', {
      rule: { performed: 'optin', wihtin_seconds: 60 },
    });
    expect(inRule.statusCode).toBe(400);
    expect(inRule.json().message).toMatch(/unknown key "wihtin_seconds"; did you mean "within_seconds"\?/);
    const q = await call('GET', '/v1/segments/nope/members?limti=5');
    expect(q.statusCode).toBe(400);
    expect(q.json().message).toMatch(/unknown key "limti"; did you mean "limit"\?/);
    const asOf = await call('POST', '/v1/segments/preview', { rule: rule3, as_of: '2026-11-20 10:00' });
    expect(asOf.json().message).toBe('body.as_of: expected ISO-8601 with a zone, e.g. 2026-11-20T00:00:00Z');
  });

  it('keeps keys to their businesses and roles', async () => {
    expect((await call('POST', '/v1/segments', { name: 'g', rule: rule3 }, keys.marketerB1)).statusCode).toBe(
      403,
    );
    expect(
      (await call('POST', '/v1/segments', { name: 'g', business_id: 'b2', rule: rule3 }, keys.marketerB1))
        .statusCode,
    ).toBe(403);
    const other = (
      await call('POST', '/v1/segments', { name: 'b2 only', business_id: 'b2', rule: rule3 })
    ).json();
    expect(other.size).toBe(1);
    for (const path of [`/v1/segments/${other.id}`, `/v1/segments/${other.id}/size`]) {
      const hidden = await call('GET', path, undefined, keys.marketerB1);
      expect(hidden.statusCode, path).toBe(404);
      expect(hidden.json().message).toBe(`No segment ${other.id}`);
    }
    expect((await call('GET', `/v1/segments/${id}`, undefined, keys.marketerB1)).statusCode).toBe(200);
    const listed = (await call('GET', '/v1/segments', undefined, keys.marketerB1))
      .json()
      .segments.map((s: { id: string }) => s.id);
    expect(listed).toContain(id);
    expect(listed).not.toContain(other.id);
    expect((await call('GET', `/v1/segments/${id}`, undefined, keys.analyst)).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: `/v1/segments/${id}` })).statusCode).toBe(401);
  });

  it('documents the endpoints in OpenAPI', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/segments',
        '/v1/segments/{id}',
        '/v1/segments/{id}/size',
        '/v1/segments/{id}/members',
        '/v1/segments/preview',
      ]),
    );
    expect(JSON.stringify(doc.paths['/v1/segments/preview'])).toContain('SegmentRule');
  });

  it('deletes a segment: its members exit and it is gone', async () => {
    const before = received.length;
    expect((await call('DELETE', `/v1/segments/${id}`)).statusCode).toBe(204);
    await waitFor(() => received.length === before + 1);
    expect(received.at(-1)).toMatchObject({ type: 'segment.exited', segment_id: id, user_id: 'u1' });
    expect((await call('GET', `/v1/segments/${id}`)).statusCode).toBe(404);
    expect((await call('GET', `/v1/segments/${id}/members`)).statusCode).toBe(404);
    expect((await call('DELETE', `/v1/segments/${id}`)).statusCode).toBe(404);
  });
});
