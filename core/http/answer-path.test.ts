import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { strictObject } from '../input.ts';
import { createLogger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { createAuth } from './auth.ts';
import { createHttp, limitPerKey, principalOf, requireRole } from './fastify.ts';

// The answer path answers a route's ordinary requests itself and hands every other one to
// Fastify as it came: answers are the same either way, and a request is counted and limited once.

const KEY = 'pk_test_answer_path_adserver';
const B1_KEY = 'pk_test_answer_path_b1';

async function setup(keyRequests = 0, requestTimeoutMs?: number) {
  const metrics = createMetrics();
  const app = await createHttp({
    logger: createLogger({ level: 'silent' }),
    bodyLimit: 64 * 1024,
    metrics,
    rateLimit: { windowMs: 60_000, authFailures: 100, keyRequests },
    requestTimeoutMs,
  });
  const auth = createAuth({
    keys: [
      { key: KEY, role: 'adserver' },
      { key: B1_KEY, role: 'adserver', businesses: ['b1'] },
      { key: 'pk_test_answer_path_analyst', role: 'analyst' },
    ],
  });
  let handled = 0;
  const answerOf = (b: { n: number; business_id: string }) =>
    b.n === 0
      ? ({ status: 204 } as const)
      : { status: 200 as const, json: JSON.stringify({ twice: b.n * 2 }) };
  app.post(
    '/v1/double',
    {
      onRequest: [requireRole(auth, 'adserver'), limitPerKey],
      schema: { body: strictObject({ n: z.number().int(), business_id: z.string() }) },
    },
    (req, reply) => {
      handled++;
      auth.checkBusiness(principalOf(req), req.body.business_id);
      const a = answerOf(req.body);
      if (a.status === 204) reply.code(204).send(null);
      else reply.type('application/json; charset=utf-8').send(a.json as never);
    },
  );
  app.parleyAnswers.post('/v1/double', {
    auth,
    roles: ['adserver'],
    accept: (v, p) => {
      const o = v as { n?: unknown; business_id?: unknown };
      if (typeof v !== 'object' || v === null || Object.keys(v).some((k) => k !== 'n' && k !== 'business_id'))
        return undefined;
      if (!Number.isInteger(o.n) || typeof o.business_id !== 'string') return undefined;
      if (p.businesses && !p.businesses.includes(o.business_id)) return undefined;
      return o as { n: number; business_id: string };
    },
    answer: (b) => answerOf(b),
  });
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  return { app, metrics, url, handled: () => handled };
}

type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** One request over a real connection (so it meets the answer path), its body as given. */
function send(
  url: URL,
  path: string,
  body: string | Buffer,
  headers: Record<string, string>,
  opts: { chunked?: boolean; agent?: Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        agent: opts.agent,
        headers: opts.chunked ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    // Written before the end, the body is sent chunked (no content-length).
    if (opts.chunked) req.write(body);
    req.end(opts.chunked ? undefined : body);
  });
}

const json = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });
const same = (a: { status: number; headers: Record<string, unknown>; body: string }) => ({
  status: a.status,
  body: a.body,
  type: a.headers['content-type'],
  nosniff: a.headers['x-content-type-options'],
  cache: a.headers['cache-control'],
  retry: a.headers['retry-after'],
});

describe('the answer path', () => {
  it('answers ordinary requests as the route does, and hands every other request to Fastify unchanged', async () => {
    const { app, url, handled } = await setup();
    // The first request of a key is authenticated by Fastify; from then on the key is known.
    const first = await send(url, '/v1/double', '{"n":2,"business_id":"b1"}', json(KEY));
    expect(first).toMatchObject({ status: 200, body: '{"twice":4}' });
    expect(handled()).toBe(1);
    expect(app.parleyAnswers.answered).toBe(0);
    const fast = await send(url, '/v1/double', '{"n":3,"business_id":"b1"}', json(KEY));
    expect(app.parleyAnswers.answered).toBe(1);
    expect(handled()).toBe(1);
    const viaFastify = await app.inject({
      method: 'POST',
      url: '/v1/double',
      headers: json(KEY),
      payload: '{"n":3,"business_id":"b1"}',
    });
    expect(same(fast)).toEqual(
      same({ status: viaFastify.statusCode, headers: viaFastify.headers, body: viaFastify.body }),
    );
    const none = await send(url, '/v1/double', '{"n":0,"business_id":"b1"}', json(KEY));
    expect(none).toMatchObject({ status: 204, body: '' });
    expect(none.headers['content-type']).toBeUndefined();
    expect(app.parleyAnswers.answered).toBe(2);

    // Each of these is answered by Fastify, exactly as it answers it without the answer path.
    await send(url, '/v1/double', '{"n":1,"business_id":"b1"}', json(B1_KEY)); // known from now on
    const others: [string, string | Buffer, Record<string, string>, { chunked?: boolean }?][] = [
      ['/v1/double', '{"n":1,', json(KEY)],
      ['/v1/double', '{"n":1,"busines_id":"b1"}', json(KEY)],
      ['/v1/double', '{"n":"1","business_id":"b1"}', json(KEY)],
      ['/v1/double', '{"n":1,"business_id":"b1","__proto__":{"x":1}}', json(KEY)],
      ['/v1/double', '[1,2]', json(KEY)],
      [
        '/v1/double',
        Buffer.from([0xef, 0xbb, 0xbf, ...Buffer.from('{"n":5,"business_id":"b1"}')]),
        json(KEY),
      ],
      ['/v1/double', Buffer.from([0x7b, 0xff, 0x7d]), json(KEY)],
      ['/v1/double', '{"n":1,"business_id":"b2"}', json(B1_KEY)],
      ['/v1/double', '{"n":1,"business_id":"b1"}', json('pk_test_answer_path_analyst')],
      ['/v1/double', '{"n":1,"business_id":"b1"}', json('pk_test_nobody')],
      ['/v1/double', '{"n":1,"business_id":"b1"}', { 'content-type': 'application/json' }],
      ['/v1/double', '{"n":1,"business_id":"b1"}', { ...json(KEY), 'content-type': 'text/plain' }],
      ['/v1/double?x=1', '{"n":1,"business_id":"b1"}', json(KEY)],
      ['/v1/double', '{"n":6,"business_id":"b1"}', json(KEY), { chunked: true }],
      ['/v1/double', `{"n":7,"business_id":"${'b'.repeat(10_000)}"}`, json(KEY)],
    ];
    const answeredBefore = app.parleyAnswers.answered;
    for (const [path, body, headers, opts] of others) {
      const over = await send(url, path, body, headers, opts);
      const direct = await app.inject({
        method: 'POST',
        url: path,
        headers: opts?.chunked ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        payload: body,
      });
      expect(same(over), `${path} ${body.toString().slice(0, 60)}`).toEqual(
        same({ status: direct.statusCode, headers: direct.headers, body: direct.body }),
      );
      expect(over.status).not.toBe(500);
    }
    expect(app.parleyAnswers.answered).toBe(answeredBefore);
    await app.close();
  });

  it('counts a request against its key once, whichever path answers it, and leaves the answer over the limit to Fastify', async () => {
    const { app, url, metrics } = await setup(3);
    const answers: number[] = [];
    for (let i = 1; i <= 5; i++)
      answers.push((await send(url, '/v1/double', `{"n":${i},"business_id":"b1"}`, json(KEY))).status);
    // The first request authenticates the key (Fastify), the next two are answered here; the
    // fourth is over the limit of three and answered 429 by Fastify, as is the fifth.
    expect(answers).toEqual([200, 200, 200, 429, 429]);
    expect(app.parleyAnswers.answered).toBe(2);
    const limited = await send(url, '/v1/double', '{"n":1,"business_id":"b1"}', json(KEY));
    expect(limited.headers['retry-after']).toMatch(/^\d+$/);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /parley_http_request_duration_seconds_count\{route="\/v1\/double",method="POST",status="200"\} 3/,
    );
    expect(text).toMatch(
      /parley_http_request_duration_seconds_count\{route="\/v1\/double",method="POST",status="429"\} 3/,
    );
    await app.close();
  });

  it('keeps a connection usable across requests answered here and by Fastify', async () => {
    const { app, url } = await setup();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = (body: string) => send(url, '/v1/double', body, json(KEY), { agent });
    const statuses: number[] = [];
    for (const body of [
      '{"n":1,"business_id":"b1"}',
      '{"n":2,"business_id":"b1"}',
      '{"n":',
      '{"n":3,"business_id":"b1"}',
      '{"x":1}',
      '{"n":4,"business_id":"b1"}',
    ])
      statuses.push((await post(body)).status);
    expect(statuses).toEqual([200, 200, 400, 200, 400, 200]);
    expect(app.parleyAnswers.answered).toBe(3);
    agent.destroy();
    await app.close();
  });

  it('leaves every request to Fastify once the server is closing', async () => {
    const { app, url } = await setup();
    await send(url, '/v1/double', '{"n":1,"business_id":"b1"}', json(KEY));
    app.parleyAnswers.close();
    const after = await send(url, '/v1/double', '{"n":2,"business_id":"b1"}', json(KEY));
    expect(after.status).toBe(200);
    expect(app.parleyAnswers.answered).toBe(0);
    await app.close();
  });

  it('answers 408 to a known key whose body does not arrive in time, as for any request', async () => {
    const { app, url } = await setup(0, 1000);
    await send(url, '/v1/double', '{"n":1,"business_id":"b1"}', json(KEY));
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(url.port), '127.0.0.1', () => {
        s.write(
          `POST /v1/double HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`,
        );
      });
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
    expect(app.parleyAnswers.answered).toBe(0);
    await app.close();
  });

  it('answers pipelined requests in order, whichever path answers each', async () => {
    const { app, url } = await setup();
    await send(url, '/v1/double', '{"n":1,"business_id":"b1"}', json(KEY));
    const req = (body: string) =>
      `POST /v1/double HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const bodies = [
      '{"n":5,"business_id":"b1"}',
      '{"x":1}',
      '{"n":6,"business_id":"b1"}',
      '{"n":7,"business_id":"b1"}',
    ];
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(url.port), '127.0.0.1', () => s.end(bodies.map(req).join('')));
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    const statuses = [...answer.matchAll(/HTTP\/1.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '400', '200', '200']);
    expect(answer.indexOf('{"twice":10}')).toBeLessThan(answer.indexOf('{"twice":12}'));
    expect(app.parleyAnswers.answered).toBe(3);
    await app.close();
  });
});
