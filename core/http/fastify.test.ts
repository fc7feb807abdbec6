import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { strictObject } from '../input.ts';
import { createLogger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { createAuth } from './auth.ts';
import { createHttp, decodeBody, principalOf, requireRole } from './fastify.ts';

describe('createHttp', () => {
  it('counts every answer in the duration histogram by route, method and status', async () => {
    const metrics = createMetrics();
    const app = await createHttp({ logger: createLogger({ level: 'silent' }), bodyLimit: 1024, metrics });
    const auth = createAuth({ keys: [{ key: 'pk_test_adserver', role: 'adserver' }] });
    app.post('/t/:id', { preHandler: requireRole(auth, 'adserver') }, async () => ({ ok: true }));
    const call = (key: string) =>
      app.inject({
        method: 'POST',
        url: '/t/1',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        payload: '{}',
      });
    for (let i = 0; i < 3; i++) expect((await call('pk_test_adserver')).statusCode).toBe(200);
    expect((await call('pk_test_unknown')).statusCode).toBe(401);
    expect((await call('pk_test_unknown')).statusCode).toBe(401);
    const text = await metrics.registry.metrics();
    const count = (status: number) =>
      Number(
        new RegExp(
          `parley_http_request_duration_seconds_count\\{route="/t/:id",method="POST",status="${status}"\\} (\\d+)`,
        ).exec(text)?.[1],
      );
    expect(count(200)).toBe(3);
    expect(count(401)).toBe(2);
    expect((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode).toBe(404);
    expect(await metrics.registry.metrics()).toMatch(
      /parley_http_request_duration_seconds_count\{route="unmatched",method="GET",status="404"\} 1/,
    );
    await app.close();
  });

  it('gives handlers the principal requireRole authenticated, and refuses a route without the hook', async () => {
    const app = await createHttp({
      logger: createLogger({ level: 'silent' }),
      bodyLimit: 1024,
      metrics: createMetrics(),
    });
    const auth = createAuth({ keys: [{ key: 'pk_test_b1', role: 'analyst', businesses: ['b1'] }] });
    app.get('/with', { onRequest: requireRole(auth, 'analyst') }, async (req) => principalOf(req).businesses);
    app.get('/without', async (req) => principalOf(req).businesses);
    const call = (url: string) => app.inject({ url, headers: { authorization: 'Bearer pk_test_b1' } });
    expect((await call('/with')).json()).toEqual(['b1']);
    const without = await call('/without');
    expect(without.statusCode).toBe(500);
    expect(without.json().error).toBe('PARLEY_ERR_INTERNAL');
    await app.close();
  });

  it('still rejects a key after its hash is remembered, and accepts the right one', async () => {
    const auth = createAuth({ keys: [{ key: 'pk_a', role: 'analyst' }] });
    for (let i = 0; i < 2; i++) {
      await expect(auth.authenticate('Bearer pk_b')).rejects.toMatchObject({
        code: 'PARLEY_ERR_UNAUTHORIZED',
      });
      await expect(auth.authenticate('Bearer pk_a')).resolves.toMatchObject({ roles: ['analyst'] });
    }
  });
});

describe('one error shape and strict inputs everywhere', () => {
  async function app() {
    const a = await createHttp({
      logger: createLogger({ level: 'silent' }),
      bodyLimit: 1024,
      metrics: createMetrics(),
    });
    a.get('/v1/t/:id', { schema: { params: strictObject({ id: z.string().max(128) }) } }, async () => ({}));
    a.get('/v1/plain', async () => ({ ok: true }));
    a.post(
      '/v1/p',
      { schema: { body: strictObject({ business_id: z.string(), name: z.string() }) } },
      async () => ({ ok: true }),
    );
    return a;
  }
  const shape = (body: string) => Object.keys(JSON.parse(body)).filter((k) => k !== 'details');

  it('answers what the router refuses itself in the error shape', async () => {
    const a = await app();
    for (const url of [`/v1/t/${'x'.repeat(1001)}`, '/v1/t/%ff', '/v1/t/%E0%A4%A']) {
      const r = await a.inject({ url });
      expect(r.statusCode).toBe(400);
      expect(shape(r.body)).toEqual(['error', 'message']);
      expect(r.json().error).toBe('PARLEY_ERR_BAD_REQUEST');
      expect(r.body).not.toMatch(/FST_ERR/);
    }
    expect((await a.inject({ url: `/v1/t/${'x'.repeat(1001)}` })).json().message).toMatch(
      /path parameter is longer than 1000 characters/,
    );
    const notFound = await a.inject({ method: 'DELETE', url: '/v1/p' });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.json()).toEqual({ error: 'PARLEY_ERR_NOT_FOUND', message: 'No route DELETE /v1/p' });
    await a.close();
  });

  it('answers 415 naming the accepted types for a JSON body sent as something else', async () => {
    const a = await app();
    for (const headers of [{ 'content-type': 'text/plain' }, {}]) {
      const r = await a.inject({
        method: 'POST',
        url: '/v1/p',
        headers,
        payload: '{"business_id":"b","name":"n"}',
      });
      expect(r.statusCode).toBe(415);
      expect(r.json()).toMatchObject({
        error: 'PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE',
        message: expect.stringMatching(/send application\/json/),
        details: { accepted: ['application/json', 'application/x-ndjson'] },
      });
    }
    await a.close();
  });

  it('names an unknown key and the key meant, in bodies and in query strings', async () => {
    const a = await app();
    const r = await a.inject({
      method: 'POST',
      url: '/v1/p',
      headers: { 'content-type': 'application/json' },
      payload: '{"busines_id":"b","name":"n"}',
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/^body: unknown key "busines_id"; did you mean "business_id"\?/);
    const q = await a.inject({ url: '/v1/plain?limt=5' });
    expect(q.statusCode).toBe(400);
    expect(q.json().message).toBe('querystring: unknown key "limt"');
    expect((await a.inject({ url: '/v1/plain' })).statusCode).toBe(200);
    await a.close();
  });
});

describe('decodeBody', () => {
  it('reads UTF-8 text, drops a byte order mark, and refuses invalid UTF-8', () => {
    expect(decodeBody(Buffer.from('[{"a":"é"}]'))).toBe('[{"a":"é"}]');
    expect(decodeBody(Buffer.from([0xef, 0xbb, 0xbf, 0x5b, 0x5d]))).toBe('[]');
    expect(decodeBody(Buffer.alloc(0))).toBe('');
    expect(() => decodeBody(Buffer.from([0x5b, 0xff, 0x5d]))).toThrow(
      expect.objectContaining({ code: 'PARLEY_ERR_INVALID_UTF8' }),
    );
    expect(() => decodeBody(Buffer.from([0xc3]))).toThrow(
      expect.objectContaining({ code: 'PARLEY_ERR_INVALID_UTF8' }),
    );
  });
});

describe('slow clients', () => {
  it('answers 408 in the error shape and closes a request whose body does not arrive in time', async () => {
    const app = await createHttp({
      logger: createLogger({ level: 'silent' }),
      bodyLimit: 1024,
      metrics: createMetrics(),
      requestTimeoutMs: 1000,
    });
    app.post('/v1/slow', async () => ({ ok: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        // Headers, then one byte of a 100-byte body, then nothing.
        s.write(
          'POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
        );
      });
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    const waited = Date.now() - started;
    expect(answer).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: 'PARLEY_ERR_REQUEST_TIMEOUT',
    });
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(5000);
    // A request that arrives in time is answered as usual.
    const ok = await fetch(`http://127.0.0.1:${port}/v1/slow`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(ok.status).toBe(200);
    await app.close();
  });
});

describe('"__proto__" keys', () => {
  it('are refused anywhere in a body, escaped or not, where a schema would drop them', async () => {
    const app = await createHttp({
      logger: createLogger({ level: 'silent' }),
      bodyLimit: 4096,
      metrics: createMetrics(),
    });
    app.post(
      '/v1/r',
      { schema: { body: z.object({ where: z.record(z.string(), z.unknown()) }) } },
      async (req) => ({
        fields: Object.keys(req.body.where),
      }),
    );
    const post = (payload: string) =>
      app.inject({ method: 'POST', url: '/v1/r', headers: { 'content-type': 'application/json' }, payload });
    for (const body of [
      '{"where":{"__proto__":{"in":["x"]},"channel":"sms"}}',
      '{"where":{"\\u005f\\u005fproto\\u005f\\u005f":1}}',
      '{"where":{"channel":"sms","list":[{"__proto__":1}]}}',
    ]) {
      const r = await post(body);
      expect(r.statusCode, body).toBe(400);
      expect(r.json()).toMatchObject({
        error: 'PARLEY_ERR_VALIDATION',
        message: 'body: the key "__proto__" is not accepted',
      });
    }
    const ok = await post('{"where":{"prototype":"__proto__ as a value is fine"}}');
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ fields: ['prototype'] });
    await app.close();
  });
});
