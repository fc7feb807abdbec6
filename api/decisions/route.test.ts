import { describe, expect, it } from 'vitest';
import { offerAnswer } from './route.ts';
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
