import { describe, expect, it } from 'vitest';
import { eventId, isoTime, parseDecisionPayload } from './common.ts';

describe('webhook helpers', () => {
  it('derives event ids as stable name-based UUIDs that differ by every part', () => {
    const a = eventId('messenger', 'm_1', 'message.received');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(eventId('messenger', 'm_1', 'message.received')).toBe(a);
    expect(eventId('messenger', 'm_1', 'referral')).not.toBe(a);
    expect(eventId('instagram', 'm_1', 'message.received')).not.toBe(a);
    // Parts are separated, so joining differently cannot collide.
    expect(eventId('ab', 'c')).not.toBe(eventId('a', 'bc'));
  });

  it('reads milliseconds and seconds, as numbers or strings', () => {
    expect(isoTime(1764000001000)).toBe('2025-11-24T16:00:01.000Z');
    expect(isoTime('1764000001')).toBe('2025-11-24T16:00:01.000Z');
    expect(isoTime(1764000001)).toBe('2025-11-24T16:00:01.000Z');
    expect(isoTime('soon')).toBeUndefined();
    expect(isoTime(undefined)).toBeUndefined();
    expect(isoTime(-5)).toBeUndefined();
  });

  it('recognises only well-formed Parley decision payloads', () => {
    expect(parseDecisionPayload('parley:d:dec_1:cmp_2')).toEqual({
      decision_id: 'dec_1',
      campaign_id: 'cmp_2',
    });
    expect(parseDecisionPayload('parley:d:2b6f1c9e-8a1d-4a57-9c1e-0f5d0c3e7a11:cmp-9')).toEqual({
      decision_id: '2b6f1c9e-8a1d-4a57-9c1e-0f5d0c3e7a11',
      campaign_id: 'cmp-9',
    });
    for (const p of [
      'parley:d:dec_1',
      'parley:d::cmp',
      'parley:d:a:b:c',
      'PARLEY:d:a:b',
      'GET_STARTED',
      'parley:d:a b:c',
      42,
      undefined,
    ]) {
      expect(parseDecisionPayload(p)).toBeUndefined();
    }
  });
});
