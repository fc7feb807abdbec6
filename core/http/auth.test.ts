import { describe, expect, it } from 'vitest';
import { createAuth } from './auth.ts';

describe('Auth.cached', () => {
  it('knows a configured key once authenticated, with the same principal, and nothing else', async () => {
    const auth = createAuth({ keys: [{ key: 'pk_a', role: 'adserver', businesses: ['b1'] }] });
    expect(auth.cached('Bearer pk_a')).toBeUndefined();
    const p = await auth.authenticate('Bearer pk_a');
    expect(auth.cached('Bearer pk_a')).toBe(p);
    expect(p).toMatchObject({ roles: ['adserver'], businesses: ['b1'] });
    await expect(auth.authenticate('Bearer pk_b')).rejects.toMatchObject({ code: 'PARLEY_ERR_UNAUTHORIZED' });
    expect(auth.cached('Bearer pk_b')).toBeUndefined();
    expect(auth.cached(undefined)).toBeUndefined();
  });
});
