import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHANNELS } from '../../core/events/schema.ts';
import { decisionInput, offerAnswer, plainDecision } from './route.ts';
import type { LiveCampaign } from './types.ts';

describe('offerAnswer', () => {
  it('writes exactly the JSON of the documented answer, escaping what campaigns and URLs hold', () => {
    const creative = {
      text: 'Line one\nsaid "20% off" — ünïcode \u2028 <b>',
      buttons: [{ title: 'Book \\ now', url: 'https://barber.example/book?a=1&b="2"' }],
    };
    const c = { id: 'cmp_"quoted"\\é', source: { creative } } as unknown as LiveCampaign;
    const token =
      'o1.d_4f1c9a2b7e1a.cmp_~22quoted~22~5C~C3~A9.biz_1.u_1.1..3uw.mhx9c3k0.Zk3v9Qp0aT1sYw8bLr2nXc';
    const base = 'http://[::1]:8080/pre"fix';
    const inner = JSON.stringify(base).slice(1, -1);
    const expected = {
      decision_id: 'd_4f1c9a2b7e1a',
      campaign_id: c.id,
      creative,
      price_micros: 5000,
      delivery_tag: token,
      tracking: {
        impression_url: `${base}/v1/impressions/${token}`,
        click_url: `${base}/v1/decisions/d_4f1c9a2b7e1a/click?o=${token}`,
      },
      postback_payload: `parley:d:d_4f1c9a2b7e1a:${c.id}`,
      hold_seconds: 600,
    };
    const written = offerAnswer(c, 'd_4f1c9a2b7e1a', 5000, token, inner, 600);
    expect(written).toBe(JSON.stringify(expected));
    expect(JSON.parse(written)).toEqual(expected);
  });
});

describe('plainDecision', () => {
  it('takes a body as it is only when the route schema accepts it unchanged', () => {
    const id = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('u_1', 'biz_1', 'x'.repeat(128)) },
      fc.string({ maxLength: 130 }),
      fc.constantFrom('', 'x'.repeat(129)),
      fc.integer(),
    );
    const body = fc.record(
      {
        user_id: id,
        business_id: id,
        thread_id: id,
        channel: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...CHANNELS) }, fc.string()),
        context: fc.oneof(
          {
            weight: 4,
            arbitrary: fc.record(
              { keywords: fc.array(fc.string({ maxLength: 520 }), { maxLength: 66 }) },
              { requiredKeys: [] },
            ),
          },
          fc.dictionary(fc.string(), fc.anything()),
          fc.anything(),
        ),
        explain: fc.oneof(fc.boolean(), fc.anything()),
        busines_id: id,
        ['__proto__']: fc.anything(),
      },
      { requiredKeys: ['user_id', 'business_id', 'channel'] },
    );
    // Mostly bodies the route accepts, with a wrong value here and there.
    const likely = fc.record(
      {
        user_id: id,
        business_id: id,
        thread_id: id,
        channel: fc.constantFrom(...CHANNELS),
        context: fc.record(
          { keywords: fc.array(fc.string({ maxLength: 520 }), { maxLength: 66 }) },
          { requiredKeys: [] },
        ),
        explain: fc.constant(false),
      },
      { requiredKeys: ['user_id', 'business_id', 'channel'] },
    );
    let taken = 0;
    fc.assert(
      fc.property(fc.oneof({ weight: 3, arbitrary: likely }, body, fc.anything()), (v) => {
        // As the body arrives: parsed from JSON text.
        const text = JSON.stringify(v);
        if (text === undefined) return;
        const value = JSON.parse(text);
        const plain = plainDecision(value);
        if (plain === undefined) return;
        taken++;
        const parsed = decisionInput.safeParse(value);
        expect(parsed.success).toBe(true);
        expect(parsed.data).toEqual(plain);
        expect(plain.explain).not.toBe(true);
      }),
      { numRuns: 3000 },
    );
    expect(taken).toBeGreaterThan(50);
  });
});
