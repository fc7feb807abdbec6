import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { didYouMean, editDistance, rangeTime, strictObject, unknownKeysMessage } from './input.ts';

describe('unknown keys', () => {
  it('measures edit distance', () => {
    expect(editDistance('busines_id', 'business_id')).toBe(1);
    expect(editDistance('segment_all', 'segments_all')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('limti', 'limit')).toBe(1);
  });

  it('suggests the key meant only when it is close', () => {
    expect(didYouMean('busines_id', ['name', 'business_id', 'rule'])).toBe('business_id');
    expect(didYouMean('Business_ID', ['business_id'])).toBe('business_id');
    expect(didYouMean('colour', ['name', 'rule'])).toBeUndefined();
    expect(didYouMean('b', ['a'])).toBeUndefined();
    expect(unknownKeysMessage(['busines_id'], ['business_id'])).toBe(
      'unknown key "busines_id"; did you mean "business_id"?',
    );
    expect(unknownKeysMessage(['zzz'], ['business_id'])).toBe('unknown key "zzz"');
  });

  it('words every strict object schema, nested ones included', () => {
    const s = strictObject({
      business_id: z.string(),
      targeting: strictObject({ segments_all: z.array(z.string()).optional() }),
    });
    const r = s.safeParse({ business_id: 'b', targeting: { segment_all: ['s1'] } });
    expect(r.error?.issues).toEqual([
      expect.objectContaining({
        path: ['targeting'],
        message: 'unknown key "segment_all"; did you mean "segments_all"?',
      }),
    ]);
  });
});

describe('rangeTime', () => {
  it('reads ISO-8601 with a zone, and a plain date as UTC midnight', () => {
    expect(rangeTime.parse('2026-11-20T01:00:00+01:00')).toBe(Date.parse('2026-11-20T00:00:00Z'));
    expect(rangeTime.parse('2026-11-20')).toBe(Date.parse('2026-11-20T00:00:00Z'));
  });

  it('says what to send, never a pattern', () => {
    for (const bad of [
      '2026-11-20 11:00:00.000',
      'yesterday',
      '2026-11-20T00:00:00',
      '2026-13-45',
      '2026-02-30',
      42,
    ]) {
      const msg = rangeTime.safeParse(bad).error?.issues[0].message;
      expect(msg).toMatch(/^expected ISO-8601 with a zone, e\.g\. 2026-11-20T00:00:00Z/);
      expect(msg!.length).toBeLessThan(120);
    }
  });
});
