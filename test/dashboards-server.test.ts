import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardsRoute, CSP, PAGES } from '../api/dashboards-route.ts';
import { eventsReadRoute } from '../api/events-route.ts';
import { segmentHistoryRoute } from '../api/segment-history-route.ts';
import { segmentsRoute } from '../api/segments-route.ts';
import { statsRoute } from '../api/stats-route.ts';
import { DASHBOARDS_DIST } from '../bin/app.ts';
import { measureDashboards } from '../bench/dashboards-size.js';
import { ensureDashboards } from '../bin/dashboards.js';
import { createLocalBus } from '../core/bus/local.ts';
import type { Bus } from '../core/bus/types.ts';
import { ConfigError, parseConfig } from '../core/config.ts';
import { createAuth } from '../core/http/auth.ts';
import { type App, createHttp } from '../core/http/fastify.ts';
import { SESSION_COOKIE, createSessions, sessionRoutes } from '../core/http/session.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';
import { T0, ev, insertEvents, openTestStore } from './reports-helpers.ts';

// The dashboards as the api serves them: pages and assets under the CSP, and signing in with a
// key for a session cookie (stored keys, so revoking one can be tested).

let store: Store;
let close: () => Promise<void>;
let bus: Bus;
let app: App;
const ORIGIN = 'http://parley.test';
const KEYS = {
  analyst: 'pk_sess_analyst_0123456789',
  analystB1: 'pk_sess_analyst_b1_0123456789',
  marketer: 'pk_sess_marketer_0123456789',
  marketerB1: 'pk_sess_marketer_b1_0123456789',
};
const sha = (k: string) => createHash('sha256').update(k).digest('hex');

async function storeKey(key: string, role: string, businesses: string[] = [], revoked = 0) {
  await store.client.insert({
    table: `${store.database}.api_keys`,
    values: [{ key_hash: sha(key), role, businesses, created_at: new Date().toISOString(), revoked }],
    format: 'JSONEachRow',
  });
}

beforeAll(async () => {
  ensureDashboards();
  ({ store, close } = await openTestStore());
  await storeKey(KEYS.analyst, 'analyst');
  await storeKey(KEYS.analystB1, 'analyst', ['b1']);
  await storeKey(KEYS.marketer, 'marketer');
  await storeKey(KEYS.marketerB1, 'marketer', ['b1']);
  const logger = createLogger({ level: 'silent' });
  bus = await createLocalBus({ dir: await mkdtemp(join(tmpdir(), 'parley-dash-log-')), logger });
  const auth = createAuth({ store, refreshMs: 0 });
  const metrics = createMetrics();
  app = await createHttp({ logger, bodyLimit: 1 << 20, metrics });
  await sessionRoutes(app, { auth, sessions: createSessions() });
  await dashboardsRoute(app, { dist: DASHBOARDS_DIST });
  await statsRoute(app, { store, auth, metrics });
  await eventsReadRoute(app, { store, auth });
  await segmentsRoute(app, { store, bus, auth, membershipTopic: 'm', minAudienceSize: 1 });
  await segmentHistoryRoute(app, { store, auth });
  const now = Date.now() - 5 * 60_000;
  await insertEvents(store, [
    ev('message.received', 'u1', now - T0),
    ev('message.received', 'u2', now - T0, { channel: 'sms' }),
    ev('order.placed', 'u1', now - T0 + 1000, { props: { value: 5 } }),
    ev('message.received', 'u9', now - T0, { business_id: 'b2' }),
  ]);
});
afterAll(async () => {
  await app?.close();
  await bus?.close();
  await close();
});

async function signIn(key: string, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/v1/session',
    headers: { host: 'parley.test', origin: ORIGIN, 'x-parley-request': '1', ...headers },
    payload: { key },
  });
}
const cookieOf = (res: { headers: Record<string, unknown> }) =>
  /parley_session=([^;]*)/.exec(String(res.headers['set-cookie']))![1];
const asSession = (id: string, more: Record<string, string> = {}) => ({
  host: 'parley.test',
  cookie: `${SESSION_COOKIE}=${id}`,
  ...more,
});

describe('serving the app', () => {
  it('answers every page with the built index.html under a strict CSP', async () => {
    for (const url of PAGES) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.headers['content-security-policy']).toBe(CSP);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.body).toMatch(
        /<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js"><\/script>/,
      );
      expect(res.body).not.toMatch(/<script>|style=/);
    }
    expect(CSP).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    );
  });

  it('keeps the first page’s JavaScript within 150 KB gzipped (and prints it)', () => {
    const r = measureDashboards();
    const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
    process.stdout.write(
      `dashboards: first page JavaScript ${kb(r.firstPageGzip)} gzipped (budget ${kb(r.budget)}); on demand: ${r.files
        .filter((f) => !f.initial)
        .map((f) => `${f.file} ${kb(f.gzip)}`)
        .join(', ')}\n`,
    );
    expect(r.files.some((f) => f.initial)).toBe(true);
    expect(r.firstPageGzip).toBeLessThanOrEqual(150 * 1024);
    // Arrow is loaded only for an export.
    expect(r.files.find((f) => f.file.startsWith('arrow-'))?.initial).toBe(false);
  });

  it('serves the hashed assets for a year, with the same headers', async () => {
    const html = (await app.inject({ method: 'GET', url: '/' })).body;
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1];
    const res = await app.inject({ method: 'GET', url: js });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('javascript');
    expect(res.headers['cache-control']).toContain('immutable');
    expect(res.headers['content-security-policy']).toBe(CSP);
    expect((await app.inject({ method: 'GET', url: '/assets/nope.js' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/v1/nothing' })).json().error).toBe(
      'PARLEY_ERR_NOT_FOUND',
    );
  });
});

describe('signing in', () => {
  it('refuses an unknown key, and a sign-in from another site', async () => {
    expect((await signIn('pk_nobody_0123456789')).statusCode).toBe(401);
    expect((await signIn(KEYS.analyst, { origin: 'http://evil.test' })).statusCode).toBe(403);
    expect((await signIn(KEYS.analyst, { 'x-parley-request': '' })).statusCode).toBe(403);
  });

  it('sets an HttpOnly, SameSite=Strict cookie for 12 h, Secure behind HTTPS', async () => {
    const res = await signIn(KEYS.analyst);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ roles: ['analyst'], businesses: null });
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Max-Age=43200/);
    expect(cookie).not.toMatch(/Secure/);
    expect(cookieOf(res)).toMatch(/^[\w-]{43}$/);
    expect(cookie).not.toContain(KEYS.analyst);
    const https = await signIn(KEYS.analyst, { 'x-forwarded-proto': 'https', origin: 'https://parley.test' });
    expect(String(https.headers['set-cookie'])).toMatch(/; Secure/);
  });

  it('lets the cookie stand for the key on reads, with no-store', async () => {
    const id = cookieOf(await signIn(KEYS.analyst));
    const res = await app.inject({ method: 'GET', url: '/v1/events?limit=10', headers: asSession(id) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json().events).toHaveLength(4);
    const who = await app.inject({ method: 'GET', url: '/v1/session', headers: asSession(id) });
    expect(who.json().roles).toEqual(['analyst']);
    // The role still applies: an analyst session cannot read segments.
    expect(
      (await app.inject({ method: 'GET', url: '/v1/segments', headers: asSession(id) })).statusCode,
    ).toBe(403);
    // A made-up session id is no session.
    expect(
      (await app.inject({ method: 'GET', url: '/v1/events', headers: asSession('x'.repeat(43)) })).statusCode,
    ).toBe(401);
  });

  it('needs the same Origin and the custom header for signed-in writes', async () => {
    const id = cookieOf(await signIn(KEYS.marketer));
    const body = { rule: { performed: 'message.received' } };
    const write = (headers: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/v1/segments/preview',
        headers: asSession(id, headers),
        payload: body,
      });
    expect((await write({})).statusCode).toBe(403);
    expect((await write({ origin: ORIGIN })).statusCode).toBe(403);
    expect((await write({ origin: 'http://evil.test', 'x-parley-request': '1' })).statusCode).toBe(403);
    const ok = await write({ origin: ORIGIN, 'x-parley-request': '1' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().size).toBe(3);
  });

  it('ends the sessions of a revoked key at their next request', async () => {
    const key = 'pk_sess_revoked_0123456789';
    await storeKey(key, 'analyst');
    const id = cookieOf(await signIn(key));
    expect((await app.inject({ method: 'GET', url: '/v1/events', headers: asSession(id) })).statusCode).toBe(
      200,
    );
    await storeKey(key, 'analyst', [], 1);
    const res = await app.inject({ method: 'GET', url: '/v1/events', headers: asSession(id) });
    expect(res.statusCode).toBe(401);
    expect(res.json().message).toMatch(/session has ended/);
  });

  it('signs out: the cookie is cleared and the session is gone', async () => {
    const id = cookieOf(await signIn(KEYS.analyst));
    const out = await app.inject({
      method: 'DELETE',
      url: '/v1/session',
      headers: asSession(id, { origin: ORIGIN, 'x-parley-request': '1' }),
    });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/parley_session=; .*Max-Age=0/);
    expect((await app.inject({ method: 'GET', url: '/v1/events', headers: asSession(id) })).statusCode).toBe(
      401,
    );
  });

  it('a bearer key still works alone, and takes precedence over a cookie', async () => {
    const id = cookieOf(await signIn(KEYS.marketer));
    const res = await app.inject({
      method: 'GET',
      url: '/v1/events',
      headers: { ...asSession(id), authorization: `Bearer ${KEYS.analyst}` },
    });
    expect(res.statusCode).toBe(200);
  });
});

describe('sessions expire', () => {
  it('after their time to live', () => {
    let t = 1_000;
    const s = createSessions({ ttlMs: 100, now: () => t });
    const { id } = s.create('h');
    expect(s.get(id)?.keyHash).toBe('h');
    t += 100;
    expect(s.get(id)).toBeUndefined();
  });
});

describe('keys with several roles', () => {
  it('are read from PARLEY_API_KEYS as "roles" and pass either role’s routes', async () => {
    const config = parseConfig({
      PARLEY_API_KEYS: JSON.stringify([{ key: 'pk_both_0123456789abc', roles: ['marketer', 'analyst'] }]),
    });
    const auth = createAuth({ keys: config.apiKeys });
    const p = await auth.authenticate('Bearer pk_both_0123456789abc');
    expect(p.roles).toEqual(['marketer', 'analyst']);
    expect(() => auth.authorize(p, ['analyst'])).not.toThrow();
    expect(() => auth.authorize(p, ['marketer'])).not.toThrow();
    expect(() => auth.authorize(p, ['adserver'])).toThrow(/role adserver/);
  });

  it('are refused with both "role" and "roles", or neither', () => {
    for (const k of [
      { key: 'pk_x_0123456789abcdef', role: 'analyst', roles: ['analyst'] },
      { key: 'pk_x_0123456789abcdef' },
    ])
      expect(() => parseConfig({ PARLEY_API_KEYS: JSON.stringify([k]) })).toThrow(ConfigError);
  });
});

describe('GET /v1/stats/overview', () => {
  it('counts stored events per minute by type and channel, and the busiest businesses', async () => {
    const id = cookieOf(await signIn(KEYS.analyst));
    const res = await app.inject({
      method: 'GET',
      url: '/v1/stats/overview?minutes=60',
      headers: asSession(id),
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const total = body.per_minute.reduce((a: number, r: { events: number }) => a + r.events, 0);
    expect(total).toBe(4);
    expect(body.per_minute).toContainEqual(
      expect.objectContaining({ type: 'message.received', channel: 'sms', events: 1 }),
    );
    expect(body.businesses).toEqual([
      { business_id: 'b1', events: 3, users: 2 },
      { business_id: 'b2', events: 1, users: 1 },
    ]);
    expect(body.ingest).toEqual({ accepted: 0, rejected: 0 });
  });

  it('shows a key limited to businesses only theirs, and no process-wide figures', async () => {
    const id = cookieOf(await signIn(KEYS.analystB1));
    const body = (
      await app.inject({ method: 'GET', url: '/v1/stats/overview', headers: asSession(id) })
    ).json();
    expect(body.businesses.map((b: { business_id: string }) => b.business_id)).toEqual(['b1']);
    expect(body.ingest).toBeNull();
    expect(body.lag).toBeNull();
    const other = await app.inject({
      method: 'GET',
      url: '/v1/stats/overview?business_id=b2',
      headers: asSession(id),
    });
    expect(other.statusCode).toBe(403);
  });

  it('is in the OpenAPI document, with the session routes', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/stats/overview', '/v1/session']));
  });
});

describe('GET /v1/segments/:id/history', () => {
  it('gives the size at the end of each UTC day, with entries and exits', async () => {
    const DAY = 86_400_000;
    const twoDaysAgo = Math.floor(Date.now() / DAY) * DAY - 2 * DAY;
    await insertEvents(store, [
      ev('message.received', 'h1', twoDaysAgo + 3_600_000 - T0, { business_id: 'bh' }),
      ev('message.received', 'h2', twoDaysAgo - 3 * DAY - T0, { business_id: 'bh' }),
    ]);
    const id = cookieOf(await signIn(KEYS.marketer));
    const write = { origin: ORIGIN, 'x-parley-request': '1' };
    const created = await app.inject({
      method: 'POST',
      url: '/v1/segments',
      headers: asSession(id, write),
      payload: {
        name: 'wrote in the last day',
        business_id: 'bh',
        rule: { performed: 'message.received', within_seconds: 86_400 },
      },
    });
    expect(created.statusCode).toBe(201);
    const res = await app.inject({
      method: 'GET',
      url: `/v1/segments/${created.json().id}/history?days=3`,
      headers: asSession(id),
    });
    expect(res.statusCode).toBe(200);
    const day = (n: number) => new Date(twoDaysAgo + n * DAY).toISOString().slice(0, 10);
    expect(res.json().days).toEqual([
      { day: day(0), size: 1, entered: 1, exited: 0 },
      { day: day(1), size: 0, entered: 0, exited: 1 },
      { day: day(2), size: 0, entered: 0, exited: 0 },
    ]);
    const limited = cookieOf(await signIn(KEYS.marketerB1));
    const other = await app.inject({
      method: 'GET',
      url: `/v1/segments/${created.json().id}/history`,
      headers: asSession(limited),
    });
    // What a key may not see is answered as what does not exist, as for the segment itself.
    expect(other.statusCode).toBe(404);
    expect(other.json().message).toBe(`No segment ${created.json().id}`);
  });
});
