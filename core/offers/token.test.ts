import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  base36,
  derivedEventId,
  impressionEvent,
  OFFER_TOKEN,
  type OfferFacts,
  signOffer,
  verifyOffer,
} from './token.ts';
import { CHANNELS } from '../events/schema.ts';

const key = Buffer.alloc(32, 7);
const T = Date.parse('2026-06-01T12:00:00Z');
const HOLD = 600_000;
const facts: OfferFacts = {
  decision_id: 'd_0123456789abc',
  campaign_id: 'cmp_spring',
  business_id: 'biz_barber_42',
  user_id: 'u_8d1f',
  channel: 'whatsapp',
  thread_id: 't_biz_barber_42_u_8d1f',
  price_micros: 5000,
  at_ms: T,
};

describe('offer tokens', () => {
  it('write numbers in base 36 as Number#toString(36) does', () => {
    const edges = [
      0,
      1,
      35,
      36,
      2 ** 31 - 1,
      2 ** 31,
      36 ** 5,
      36 ** 6 - 1,
      36 ** 6,
      T,
      2 ** 53 - 1,
      2 ** 53,
    ];
    for (const n of [...edges, -1, -(2 ** 40), 1.5, 1e300]) expect(base36(n)).toBe(n.toString(36));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => base36(n) === n.toString(36)),
    );
  });

  it('round-trip their facts, compactly, with the default thread left out', () => {
    const t = signOffer(key, facts);
    expect(t).toMatch(/^o1\.[A-Za-z0-9_.~-]+$/);
    expect(t.length).toBeLessThan(110);
    expect(verifyOffer(key, t, T + 1000, HOLD)).toEqual({ ok: true, facts });
  });

  it('carry any id exactly; within 512 characters for 128-character ids on the default thread', () => {
    const odd = { ...facts, user_id: 'u 1.ü/~x', thread_id: 'thread.with spaces', business_id: 'b~2' };
    expect(verifyOffer(key, signOffer(key, odd), T, HOLD)).toEqual({ ok: true, facts: odd });
    const long = 'x'.repeat(128);
    const big = {
      ...facts,
      campaign_id: long,
      business_id: long,
      user_id: long,
      thread_id: `t_${long}_${long}`,
    };
    const t = signOffer(key, big);
    expect(t.length).toBeLessThanOrEqual(512);
    expect(verifyOffer(key, t, T, HOLD)).toEqual({ ok: true, facts: big });
    // A 128-character thread of its own as well: beyond WhatsApp's limit, within Messenger's.
    const own = signOffer(key, { ...big, thread_id: long });
    expect(own.length).toBeGreaterThan(512);
    expect(own.length).toBeLessThan(1000);
  });

  it('all have the documented form, whatever their ids; a token of another form is malformed', () => {
    const id = fc.string({ unit: 'binary', minLength: 1, maxLength: 128 });
    fc.assert(
      fc.property(
        fc.record({
          decision_id: id,
          campaign_id: id,
          business_id: id,
          user_id: id,
          channel: fc.constantFrom(...CHANNELS),
          thread_id: id,
          price_micros: fc.nat(),
          at_ms: fc.integer({ min: 0, max: 2 ** 45 }),
        }),
        (f) => {
          const t = signOffer(key, f);
          expect(t).toMatch(OFFER_TOKEN);
          expect(verifyOffer(key, t, f.at_ms, HOLD)).toMatchObject({ ok: true });
        },
      ),
    );
    const t = signOffer(key, facts);
    // A user id with a character no token carries: refused before the signature is checked.
    expect(verifyOffer(key, t.replace('.u_8d1f.', '.u%8d1f.'), T, HOLD)).toMatchObject({
      error: 'malformed',
    });
  });

  it('refuse forged, altered, foreign-key and expired tokens', () => {
    const t = signOffer(key, facts);
    expect(verifyOffer(key, t.replace('cmp_spring', 'cmp_winter'), T, HOLD)).toEqual({
      ok: false,
      error: 'bad_signature',
    });
    expect(verifyOffer(key, t.replace('.3uw.', '.3ux.'), T, HOLD)).toMatchObject({ error: 'bad_signature' });
    expect(verifyOffer(Buffer.alloc(32, 8), t, T, HOLD)).toMatchObject({ error: 'bad_signature' });
    expect(verifyOffer(key, `${t.slice(0, -1)}A`, T, HOLD)).toMatchObject({ ok: false });
    expect(verifyOffer(key, 'o1.a.b', T, HOLD)).toMatchObject({ error: 'malformed' });
    expect(verifyOffer(key, 42, T, HOLD)).toMatchObject({ error: 'malformed' });
    expect(verifyOffer(key, t, T + HOLD + 1, HOLD)).toMatchObject({ error: 'expired' });
    expect(verifyOffer(key, t, T + HOLD, HOLD)).toMatchObject({ ok: true });
    expect(verifyOffer(key, t, T - 120_000, HOLD)).toMatchObject({ error: 'expired' }); // from the future
  });

  it('make one impression event per decision, at the offer’s time', () => {
    const e = impressionEvent(facts);
    expect(e).toMatchObject({
      type: 'sponsored.served',
      occurred_at: new Date(T).toISOString(),
      user_id: 'u_8d1f',
      props: { decision_id: facts.decision_id, campaign_id: 'cmp_spring', price_micros: 5000 },
    });
    expect(impressionEvent({ ...facts, at_ms: T + 1 }).event_id).toBe(e.event_id);
    expect(e.event_id).toBe(derivedEventId('impression', facts.decision_id));
    expect(e.event_id).not.toBe(derivedEventId('click', facts.decision_id));
  });
});
