import { describe, expect, it } from 'vitest';
import { normalizeEvent } from './normalize.ts';

// sponsored.withheld: the first would-be offer of a campaign with a holdout (docs/reports.md).

const ctx = { now: Date.parse('2026-03-05T00:00:00Z'), maxFutureMs: 300_000, keywords: [] };
const marker = (props: Record<string, unknown>) =>
  normalizeEvent(
    {
      event_id: 'w1',
      type: 'sponsored.withheld',
      occurred_at: '2026-03-04T10:00:00Z',
      business_id: 'b1',
      user_id: 'u1',
      channel: 'whatsapp',
      props,
    },
    ctx,
  );

describe('sponsored.withheld', () => {
  it('is accepted with campaign_id, price and group', () => {
    const r = marker({ decision_id: 'd1', campaign_id: 'cmp_1', price_micros: 250_000, group: 'control' });
    expect(r.ok).toBe(true);
    expect(marker({ campaign_id: 'cmp_1', group: 'treatment' }).ok).toBe(true);
  });

  it('needs campaign_id, a known group and a whole price', () => {
    expect(marker({ decision_id: 'd1' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/campaign_id/),
    });
    expect(marker({ campaign_id: 'cmp_1', group: 'holdout' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/group/),
    });
    expect(marker({ campaign_id: 'cmp_1', price_micros: -1 }).ok).toBe(false);
  });
});
