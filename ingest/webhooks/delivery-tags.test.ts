import { describe, expect, it } from 'vitest';
import { derivedEventId } from '../../core/offers/token.ts';
import { ctx, deliver, fixture, NOW } from './test-helpers.ts';

// Delivery tags on echoes (Messenger, Instagram) and statuses (WhatsApp): a valid tag records its
// offer's impression, once per decision; a forged one or an expired one records nothing.

const offers = { key: Buffer.alloc(32, 0x5a), holdMs: 600_000, nowMs: NOW };
const withOffers = { ...ctx, offers };

describe('delivery tags in webhooks', () => {
  it('turn a Messenger echo carrying a tag into the offer’s impression, and ignore a forged tag', () => {
    const out = deliver('messenger', fixture('messenger-echo-delivery-tag.json'), withOffers);
    const served = out.events.filter((e) => e.type === 'sponsored.served');
    expect(served).toEqual([
      expect.objectContaining({
        event_id: derivedEventId('impression', 'd_3f9a0c21b4e01'),
        business_id: 'biz_barber_42',
        user_id: '7012345678901234',
        channel: 'messenger',
        occurred_at: new Date(NOW - 30_000).toISOString(),
        props: expect.objectContaining({
          decision_id: 'd_3f9a0c21b4e01',
          campaign_id: 'cmp_spring_cut',
          price_micros: 4200,
        }),
      }),
    ]);
    // Both echoes are still the business's messages.
    expect(out.events.filter((e) => e.type === 'message.sent')).toHaveLength(2);
    expect(out.ignored).toContainEqual({ kind: 'delivery_tag:bad_signature' });
  });

  it('turn WhatsApp sent and delivered statuses carrying a tag into one impression', () => {
    const out = deliver('whatsapp', fixture('whatsapp-status-delivery-tag.json'), withOffers);
    const served = out.events.filter((e) => e.type === 'sponsored.served');
    expect(served).toHaveLength(2); // sent and delivered: the same event id, one event in storage
    expect(new Set(served.map((e) => e.event_id))).toEqual(
      new Set([derivedEventId('impression', 'd_3f9a0c21b4e02')]),
    );
    expect(served[0]).toMatchObject({
      user_id: 'u_wa_5f2e',
      channel: 'whatsapp',
      thread_id: 't_biz_barber_42_u_wa_5f2e',
    });
  });

  it('record nothing for an expired tag, a tag under another key, or without offers configured', () => {
    const late = deliver('whatsapp', fixture('whatsapp-status-delivery-tag.json'), {
      ...ctx,
      offers: { ...offers, nowMs: NOW + 700_000 },
    });
    expect(late.events.some((e) => e.type === 'sponsored.served')).toBe(false);
    expect(late.ignored).toContainEqual({ kind: 'delivery_tag:expired' });
    const other = deliver('messenger', fixture('messenger-echo-delivery-tag.json'), {
      ...ctx,
      offers: { ...offers, key: Buffer.alloc(32, 1) },
    });
    expect(other.events.some((e) => e.type === 'sponsored.served')).toBe(false);
    const none = deliver('messenger', fixture('messenger-echo-delivery-tag.json'));
    expect(none.events.some((e) => e.type === 'sponsored.served')).toBe(false);
    expect(none.ignored).toContainEqual({ kind: 'delivery_tag:not_configured' });
  });
});
