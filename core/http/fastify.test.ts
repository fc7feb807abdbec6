import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { createAuth } from './auth.ts';
import { createHttp, decodeBody, requireRole } from './fastify.ts';

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
