import { describe, expect, it } from 'vitest';
import { normalizeEvent } from './normalize.ts';
import { hashEmail, hashPhone, keyedId, matchKeywords, normalizePhone } from './privacy.ts';

const now = Date.parse('2026-03-05T00:00:00Z');
const ctx = { now, maxFutureMs: 300_000, keywords: ['haircut', 'beard trim'] };
const base = {
  event_id: 'e1',
  type: 'message.received',
  occurred_at: '2026-03-04T10:15:30.123+01:00',
  business_id: 'biz_barber_42',
  user_id: 'u_1',
  channel: 'whatsapp',
};

describe('normalizeEvent', () => {
  it('refuses a "__proto__" prop on every path, rather than dropping it', () => {
    for (const type of ['message.received', 'order.placed']) {
      const props = type === 'order.placed' ? '"order_id":"o1","value":3,"currency":"USD",' : '';
      const input = JSON.parse(`{"event_id":"e1","type":"${type}","occurred_at":"2026-03-04T10:15:30.123Z",
        "business_id":"b","user_id":"u","channel":"whatsapp","props":{${props}"__proto__":{"value":5}}}`);
      for (const fast of [true, false])
        expect(normalizeEvent(input, ctx, { fast })).toEqual({
          ok: false,
          error: 'props: the prop name "__proto__" cannot be queried; use 1 to 64 letters, digits, _ or -',
        });
    }
  });

  it('stores time as UTC milliseconds and defaults thread_id', () => {
    const r = normalizeEvent(base, ctx);
    expect(r).toEqual({
      ok: true,
      value: {
        ...base,
        occurred_at: '2026-03-04T09:15:30.123Z',
        thread_id: 't_biz_barber_42_u_1',
        props: {},
      },
    });
  });

  it('writes every accepted time in one form: UTC with milliseconds', () => {
    const at = (occurred_at: string) => {
      const r = normalizeEvent({ ...base, occurred_at }, ctx);
      return r.ok ? r.value.occurred_at : r.error;
    };
    expect(at('2026-03-04T09:15:30.123Z')).toBe('2026-03-04T09:15:30.123Z');
    expect(at('2026-03-04T09:15:30Z')).toBe('2026-03-04T09:15:30.000Z');
    expect(at('2026-03-04T09:15:30.1Z')).toBe('2026-03-04T09:15:30.100Z');
    expect(at('2026-03-04T09:15:30.123456Z')).toBe('2026-03-04T09:15:30.123Z');
    expect(at('2026-03-04T21:15:30.123-02:00')).toBe('2026-03-04T23:15:30.123Z');
  });

  it('reduces raw text to its length and configured keywords', () => {
    const r = normalizeEvent({ ...base, props: { text: 'Need a HAIRCUT and a beard-trim, please 💈' } }, ctx);
    expect(r.ok && r.value.props).toEqual({ text_length: 41, keywords: ['haircut', 'beard trim'] });
    expect(JSON.stringify(r)).not.toContain('please');
    // Counted in code points, as [...text] counts them: a pair is one, a lone surrogate one.
    const length = (text: string) => {
      const out = normalizeEvent({ ...base, props: { text } }, ctx);
      return out.ok ? out.value.props.text_length : out.error;
    };
    for (const text of ['', 'a', '💈💈', 'a\ud800', '\udc00\ud800b', '\ud83d', 'x\ud83d\udc88\ud83d'])
      expect(length(text)).toBe([...text].length);
  });

  it('checks a time in the canonical form by its calendar, as the schema does', () => {
    const accepted = (occurred_at: string) => normalizeEvent({ ...base, occurred_at }, ctx).ok;
    expect(accepted('2024-02-29T10:00:00.000Z')).toBe(true);
    expect(accepted('2000-02-29T23:59:59.999Z')).toBe(true);
    expect(accepted('2025-02-29T10:00:00.000Z')).toBe(false);
    expect(accepted('2100-02-29T10:00:00.000Z')).toBe(false);
    expect(accepted('2026-04-31T10:00:00.000Z')).toBe(false);
    expect(accepted('2026-00-10T10:00:00.000Z')).toBe(false);
    expect(accepted('2026-13-10T10:00:00.000Z')).toBe(false);
    expect(accepted('2026-03-00T10:00:00.000Z')).toBe(false);
    expect(accepted('2026-03-04T24:00:00.000Z')).toBe(false);
    expect(accepted('2026-03-04T10:60:00.000Z')).toBe(false);
    expect(accepted('2026-03-04T10:00:60.000Z')).toBe(false);
  });

  it('hashes raw email and phone per Meta rules and drops them', () => {
    const r = normalizeEvent(
      {
        ...base,
        type: 'lead.submitted',
        props: { email: '  Jane.Doe@Example.COM ', phone: '+1 (650) 555-0100', value: 10 },
      },
      ctx,
    );
    expect(r.ok && r.value.props).toEqual({
      value: 10,
      email_sha256: hashEmail('jane.doe@example.com'),
      phone_sha256: hashPhone('16505550100'),
    });
    expect(JSON.stringify(r)).not.toMatch(/jane|555/i);
  });

  it.each([
    [{ ...base, type: 'message.exploded' }, /unknown event type "message.exploded"/],
    [{ ...base, occurred_at: '2026-03-04T10:15:30' }, /occurred_at: must be an ISO-8601 time with a zone/],
    [{ ...base, occurred_at: '2026-03-05T00:10:00Z' }, /more than 300s in the future/],
    [{ ...base, user_id: 42 }, /user_id: Invalid input: expected string/],
    [{ ...base, business_id: undefined }, /business_id/],
    [{ ...base, channel: 'fax' }, /channel: Invalid option/],
    [{ ...base, type: 'order.placed', props: {} }, /props.value/],
    [{ ...base, type: 'order.placed', props: { value: -1 } }, /props.value: must not be negative/],
    [{ ...base, type: 'sponsored.served', props: {} }, /props.campaign_id/],
    [{ ...base, user_id: 'x'.repeat(129) }, /user_id: must be at most 128 characters/],
    [{ ...base, props: { note: 'x'.repeat(513) } }, /props.note/],
    [{ ...base, props: { nested: { a: 1 } } }, /props.nested/],
    ['not an object', /an event must be a JSON object/],
    [[base], /an event must be a JSON object/],
  ])('rejects %#', (input, message) => {
    const r = normalizeEvent(input, ctx);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(message);
  });
});

describe('privacy helpers', () => {
  it('normalises phones to digits without leading zeros', () => {
    expect(normalizePhone('+44 (0)20 7946-0958')).toBe('440207946 0958'.replace(/\D/g, ''));
    expect(normalizePhone('0049 30 1234')).toBe('49301234');
  });
  it('keyed ids are stable and secret-dependent', () => {
    expect(keyedId('s1', '15551234567')).toBe(keyedId('s1', '15551234567'));
    expect(keyedId('s1', '15551234567')).not.toBe(keyedId('s2', '15551234567'));
    expect(keyedId('s1', '15551234567')).not.toContain('5551234567');
  });
  it('matches whole words and phrases only', () => {
    expect(matchKeywords('haircuts are great', ['haircut'])).toEqual([]);
    expect(matchKeywords('A haircut!', ['haircut'])).toEqual(['haircut']);
  });
});

describe('normalizeEvent refuses what the store or a later stage would refuse', () => {
  const error = (over: Record<string, unknown>) => {
    const r = normalizeEvent({ ...base, ...over }, ctx);
    return r.ok ? undefined : r.error;
  };

  it('refuses invalid Unicode in ids, prop names and prop values', () => {
    expect(error({ user_id: 'x\ud800y' })).toBe(
      'user_id: contains invalid Unicode (a lone UTF-16 surrogate)',
    );
    expect(error({ event_id: '\udc00' })).toMatch(/^event_id: contains invalid Unicode/);
    expect(error({ thread_id: 'ok\ud83d' })).toMatch(/^thread_id: contains invalid Unicode/);
    expect(error({ props: { 'k\ud800': 1 } })).toMatch(/^props: the prop name "k\\ud800" cannot be queried/);
    expect(error({ props: { note: 'a\udfffb' } })).toBe(
      'props.note: contains invalid Unicode (a lone UTF-16 surrogate)',
    );
    expect(error({ props: { tags: ['ok', '\ud800'] } })).toMatch(/^props.tags: contains invalid Unicode/);
    // A pair is fine, and raw text (never stored) is reduced rather than refused.
    expect(error({ user_id: 'u_\ud83d\ude00' })).toBeUndefined();
    expect(error({ props: { text: 'broken \ud800 text' } })).toBeUndefined();
  });

  it('refuses a default thread_id over the id limit, and accepts the same user with a thread_id', () => {
    const user_id = 'u'.repeat(124);
    expect(error({ user_id })).toMatch(
      /^thread_id: the default thread_id "t_<business_id>_<user_id>" would be 140 characters \(at most 128\)/,
    );
    expect(error({ user_id, thread_id: 't1' })).toBeUndefined();
    expect(error({ user_id: 'u'.repeat(128 - 'biz_barber_42'.length - 3) })).toBeUndefined();
  });

  it('refuses ids made only of whitespace', () => {
    expect(error({ user_id: '   ' })).toBe('user_id: must not be only whitespace');
    expect(error({ business_id: '\t\n' })).toBe('business_id: must not be only whitespace');
    expect(error({ event_id: ' e1 ' })).toBeUndefined();
  });

  it('refuses prop names segment rules cannot query', () => {
    for (const name of ['a.b', '', 'with space', 'é', 'x'.repeat(65), '__proto__'])
      expect(error({ props: JSON.parse(JSON.stringify({ [name]: 1 })) })).toMatch(
        /^props: the prop name .* cannot be queried/,
      );
    expect(error({ props: { 'kebab-case_1': 1 } })).toBeUndefined();
  });

  it('refuses unknown top-level keys, naming the key meant', () => {
    expect(error({ busines_id: 'b' })).toMatch(/unknown key "busines_id"; did you mean "business_id"\?/);
  });
});
