import { describe, expect, it } from 'vitest';
import { isParleyError } from '../errors.ts';
import { type Principal, checkBusiness, createAuth, readScope, visible } from './auth.ts';

const all: Principal = { roles: ['analyst'], keyHash: 'a' };
const b1: Principal = { roles: ['analyst'], businesses: ['b1'], keyHash: 'b' };
const admin: Principal = { roles: ['admin'], businesses: ['b1'], keyHash: 'c' };

const codeOf = (f: () => unknown) => {
  try {
    f();
    return undefined;
  } catch (e) {
    return isParleyError(e) ? e.code : e;
  }
};

describe('business tenancy', () => {
  it('readScope: a limited key reads its businesses, and may ask only for one of them', () => {
    expect(readScope(all, undefined)).toBeUndefined();
    expect(readScope(all, 'b2')).toBeUndefined();
    expect(readScope(b1, undefined)).toEqual(['b1']);
    expect(readScope(b1, 'b1')).toEqual(['b1']);
    expect(codeOf(() => readScope(b1, 'b2'))).toBe('PARLEY_ERR_FORBIDDEN');
    expect(readScope(admin, 'b2')).toBeUndefined(); // admin is never limited
  });

  it('checkBusiness: a limited key may not write for another business, nor for every business', () => {
    expect(codeOf(() => checkBusiness(b1, 'b1'))).toBeUndefined();
    for (const b of ['b2', null, undefined])
      expect(
        codeOf(() => checkBusiness(b1, b)),
        String(b),
      ).toBe('PARLEY_ERR_FORBIDDEN');
    expect(codeOf(() => checkBusiness(all, null))).toBeUndefined();
  });

  it('visible: what a key may not see does not exist for it', () => {
    const own = { business_id: 'b1', deleted: false };
    expect(visible(b1, own, 'No x')).toBe(own);
    for (const r of [
      undefined,
      { business_id: 'b2' },
      { business_id: null },
      { business_id: 'b1', deleted: true },
    ])
      expect(
        codeOf(() => visible(b1, r, 'No x')),
        JSON.stringify(r),
      ).toBe('PARLEY_ERR_NOT_FOUND');
    expect(visible(all, { business_id: null }, 'No x')).toEqual({ business_id: null });
  });
});

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
