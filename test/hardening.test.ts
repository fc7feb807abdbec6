import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newKey, testApp } from './helpers/app.ts';

// Requests that are not allowed cost nothing; keys learn nothing they may not see; answers carry
// the headers a trusted service sends.

let t: Awaited<ReturnType<typeof testApp>>;
const metricsKey = newKey('metrics');
const multiKey = newKey('multi');

beforeAll(async () => {
  t = await testApp(
    { PARLEY_RATE_LIMIT_AUTH_FAILURES: '5', PARLEY_RATE_LIMIT_KEY_REQUESTS: '20' },
    {
      extraKeys: [
        { key: metricsKey, role: 'metrics' },
        { key: multiKey, roles: ['ingest', 'analyst'] },
      ],
    },
  );
  await t.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => t?.close());

const event = () => ({
  event_id: crypto.randomUUID(),
  type: 'message.received',
  occurred_at: new Date().toISOString(),
  business_id: 'b1',
  user_id: 'u1',
  channel: 'whatsapp',
});
const port = () => (t.app.server.address() as { port: number }).port;

/** Sends the head of a request announcing a body of `length` bytes, and only `sent` of them. */
function partialPost(path: string, length: number, sent: number): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const s0 = performance.now();
    const sock = connect(port(), '127.0.0.1', () => {
      sock.write(
        `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`,
      );
      sock.write('['.repeat(sent));
    });
    let head = '';
    sock.on('data', (d) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m) {
        resolve({ status: Number(m[1]), ms: performance.now() - s0 });
        sock.destroy();
      }
    });
    sock.on('error', reject);
    setTimeout(() => reject(new Error('no answer before the body was sent')), 5000).unref();
  });
}

describe('requests that are not allowed', () => {
  it('answers 401 before reading a 10 MB body that is never sent in full', async () => {
    const r = await partialPost('/v1/events', 10 * 1024 * 1024, 64 * 1024);
    expect(r.status).toBe(401);
    expect(r.ms).toBeLessThan(2000);
  });

  it('checks the key before the schema', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/segments', payload: { nonsense: true } });
    expect(res.statusCode).toBe(401);
    const wrongRole = await t.app.inject({
      method: 'POST',
      url: '/v1/segments',
      payload: { nonsense: true },
      headers: { authorization: `Bearer ${t.keys.ingest}` },
    });
    expect(wrongRole.statusCode).toBe(403);
  });

  it('limits failed authentications per client address, with Retry-After, even for a good key then', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await t.app.inject({
        method: 'GET',
        url: '/v1/events',
        remoteAddress: '10.9.9.9',
        headers: { authorization: `Bearer wrong-key-${i}-0123456789` },
      });
      codes.push(res.statusCode);
      if (res.statusCode === 429) expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(codes.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(codes.slice(5)).toEqual([429, 429, 429]);
    const good = await t.app.inject({
      method: 'GET',
      url: '/v1/events',
      remoteAddress: '10.9.9.9',
      headers: { authorization: `Bearer ${t.keys.analyst}` },
    });
    expect(good.statusCode).toBe(429);
    const elsewhere = await t.app.inject({
      method: 'GET',
      url: '/v1/events',
      remoteAddress: '10.9.9.10',
      headers: { authorization: `Bearer ${t.keys.analyst}` },
    });
    expect(elsewhere.statusCode).toBe(200);
  });

  it('limits requests per key on ingest, with 429 and Retry-After', async () => {
    const post = (key: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/events',
        payload: [event()],
        headers: { authorization: `Bearer ${key}` },
      });
    const codes: number[] = [];
    for (let i = 0; i < 22; i++) codes.push((await post(t.keys.ingest)).statusCode);
    expect(codes.filter((c) => c === 202)).toHaveLength(20);
    const limited = await post(t.keys.ingest);
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error).toBe('PARLEY_ERR_RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post(t.keys.admin)).statusCode).toBe(202); // another key has its own budget
  });

  it('limits requests per key on decisions, with 429, Retry-After and the error shape', async () => {
    const decide = (key: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/decisions',
        payload: { user_id: 'u1', business_id: 'b1', channel: 'webchat' },
        headers: { authorization: `Bearer ${key}` },
      });
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) codes.push((await decide(t.keys.adserver)).statusCode);
    expect(codes).not.toContain(429);
    const limited = await decide(t.keys.adserver);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ error: 'PARLEY_ERR_RATE_LIMITED' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.headers['x-content-type-options']).toBe('nosniff');
    expect(limited.headers['cache-control']).toBe('no-store');
  });
});

describe('what a key may see', () => {
  it('serves /metrics and readiness only with a key', async () => {
    expect((await t.app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/v1/decisions/ready' })).statusCode).toBe(401);
    const auth = { authorization: `Bearer ${metricsKey}` };
    const m = await t.app.inject({ url: '/metrics', headers: auth });
    expect(m.statusCode).toBe(200);
    expect(m.body).toMatch(/parley_decision_engine_ready [01]/);
    expect((await t.app.inject({ url: '/v1/decisions/ready', headers: auth })).statusCode).not.toBe(401);
    const analyst = { authorization: `Bearer ${t.keys.analyst}` };
    expect((await t.app.inject({ url: '/metrics', headers: analyst })).statusCode).toBe(403);
  });

  it('lets a key with several roles do what each role may', async () => {
    const auth = { authorization: `Bearer ${multiKey}` };
    expect((await t.app.inject({ url: '/v1/events', headers: auth })).statusCode).toBe(200);
    expect(
      (await t.app.inject({ method: 'POST', url: '/v1/events', payload: [event()], headers: auth }))
        .statusCode,
    ).toBe(202);
    expect((await t.app.inject({ url: '/v1/segments', headers: auth })).statusCode).toBe(403);
  });
});

describe('the OpenAPI document and the answers', () => {
  it('refuses an over-long id with 400 in the error shape, not a bare 414', async () => {
    const res = await t.app.inject({
      url: `/v1/segments/${'x'.repeat(1001)}`,
      headers: { authorization: `Bearer ${t.keys.admin}` },
    });
    expect(res.statusCode).toBe(400);
    // The router refuses path parameters over 1000 characters itself, in the same error shape.
    expect(res.json()).toMatchObject({
      error: 'PARLEY_ERR_BAD_REQUEST',
      message: expect.stringContaining('1000'),
    });
    // Shorter ones reach the route, whose schema refuses an id over 128 characters.
    const id = await t.app.inject({
      url: `/v1/segments/${'x'.repeat(300)}`,
      headers: { authorization: `Bearer ${t.keys.admin}` },
    });
    expect(id.statusCode).toBe(400);
    expect(id.json()).toMatchObject({
      error: 'PARLEY_ERR_VALIDATION',
      message: expect.stringMatching(/^params\.id: /),
    });
  });

  it('answers an over-long request line with 431 in the error shape', async () => {
    const res = await fetch(`http://127.0.0.1:${port()}/v1/decisions/${'x'.repeat(20_000)}/click`);
    expect(res.status).toBe(431);
    expect(((await res.json()) as { error: string }).error).toBe('PARLEY_ERR_HEADERS_TOO_LARGE');
  });

  it('documents 204 without a body, and the error answers of authenticated routes', async () => {
    const doc = (await t.app.inject({ url: '/openapi.json' })).json();
    const del = doc.paths['/v1/segments/{id}'].delete.responses;
    expect(del['204'].content).toBeUndefined();
    for (const code of ['400', '401', '403', '404', '429', '503']) expect(del[code], code).toBeDefined();
    expect(doc.paths['/v1/decisions/{id}/click'].get.responses['401']).toBeUndefined();
  });
});

describe('headers', () => {
  it('marks authenticated answers and exports no-store and nosniff', async () => {
    for (const accept of ['application/json', 'text/csv']) {
      const res = await t.app.inject({
        url: '/v1/events',
        headers: { authorization: `Bearer ${t.keys.admin}`, accept },
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    const refused = await t.app.inject({ url: '/v1/events' });
    expect(refused.headers['cache-control']).toBe('no-store');
    expect(refused.headers['x-content-type-options']).toBe('nosniff');
  });

  it('forbids framing the API documentation', async () => {
    const res = await t.app.inject({ url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });
});
