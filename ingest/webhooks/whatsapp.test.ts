// WhatsApp Cloud API deliveries (fixtures built from Meta's references, see fixtures/SOURCES.md)
// and the exact canonical events they become.
import { describe, expect, it } from 'vitest';
import { keyedId, sha256Hex } from '../../core/events/privacy.ts';
import { eventId } from './common.ts';
import { HASH_SECRET, deliver, fixture } from './test-helpers.ts';
import { adaptWhatsApp, orderValue } from './whatsapp.ts';

const WABA = '102290129340398';
const USER = keyedId(HASH_SECRET, '16505551234');
const ev = (type: string, seconds: number, key: (string | number)[], props: Record<string, unknown>) => ({
  event_id: eventId(...key),
  type,
  occurred_at: new Date(seconds * 1000).toISOString(),
  business_id: WABA,
  user_id: USER,
  thread_id: `t_${WABA}_${USER}`,
  channel: 'whatsapp',
  props,
});

describe('WhatsApp webhooks', () => {
  it('text messages, and a Click-to-WhatsApp ad referral on the first message as its own event', () => {
    const r = deliver('whatsapp', fixture('whatsapp-text-referral.json'));
    expect(r.rejected).toEqual([]);
    expect(r.events).toEqual([
      ev(
        'message.received',
        1764001001,
        ['whatsapp', 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=', 'message.received'],
        { text_length: 55 },
      ),
      ev(
        'referral',
        1764001001,
        ['whatsapp', 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=', 'referral'],
        {
          source: 'ad',
          ad_id: '120226305854810726',
          ctwa_clid:
            'Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0NiNhEgpGo0AHemvuSoifXaytfTzcchptiErTKCqTrJ5nW1h7IHYeYymGb5K5J5iTROpBhWAGaIAeUzHL50',
        },
      ),
      // "Voilà, café crème at noon?" arrives escaped (\u00e0…) and counts 26 characters.
      ev(
        'message.received',
        1764001002,
        ['whatsapp', 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMQA=', 'message.received'],
        { text_length: 26 },
      ),
    ]);
  });

  it('interactive button and list replies and template quick replies are taps; a Parley decision is sponsored.clicked', () => {
    const r = deliver('whatsapp', fixture('whatsapp-replies.json'));
    expect(r.events).toEqual([
      ev('postback', 1764001101, ['whatsapp', 'wamid.REPLY_BUTTON_0001', 'postback'], {
        payload: 'change-appointment',
        title: 'Change',
      }),
      ev('sponsored.clicked', 1764001102, ['whatsapp', 'wamid.REPLY_LIST_0002', 'sponsored.clicked'], {
        decision_id: 'dec_b21c04',
        campaign_id: 'cmp_summer_plants',
      }),
      ev('postback', 1764001103, ['whatsapp', 'wamid.TEMPLATE_BUTTON_0003', 'postback'], {
        payload: 'Unsubscribe',
        title: 'Unsubscribe',
      }),
    ]);
  });

  it('orders become order.placed worth Σ item_price × quantity', () => {
    const r = deliver('whatsapp', fixture('whatsapp-order.json'));
    expect(r.events).toEqual([
      ev('order.placed', 1764001201, ['whatsapp', 'wamid.ORDER_0001', 'order.placed'], {
        order_id: sha256Hex('wamid.ORDER_0001'),
        value: 73.99,
        currency: 'USD',
      }),
    ]);
    expect(orderValue({ product_items: [{ item_price: 0.1, quantity: 3, currency: 'EUR' }] })).toEqual({
      value: 0.3,
      currency: 'EUR',
    });
    expect(orderValue({ product_items: [] })).toBeUndefined();
    expect(orderValue({ product_items: [{ item_price: 'x', quantity: 1 }] })).toBeUndefined();
  });

  it('media, location and contact cards are received messages with an attachment; captions become lengths', () => {
    const r = deliver('whatsapp', fixture('whatsapp-media.json'));
    const id = (s: string) => ['whatsapp', s, 'message.received'];
    expect(r.events).toEqual([
      ev('message.received', 1764001301, id('wamid.IMAGE_0001'), { has_attachment: true, text_length: 22 }),
      ev('message.received', 1764001302, id('wamid.AUDIO_0002'), { has_attachment: true }),
      ev('message.received', 1764001303, id('wamid.VIDEO_0003'), { has_attachment: true, text_length: 23 }),
      ev('message.received', 1764001304, id('wamid.DOCUMENT_0004'), {
        has_attachment: true,
        text_length: 17,
      }),
      ev('message.received', 1764001305, id('wamid.STICKER_0005'), { has_attachment: true }),
      ev('message.received', 1764001306, id('wamid.LOCATION_0006'), { has_attachment: true }),
      ev('message.received', 1764001307, id('wamid.CONTACTS_0007'), { has_attachment: true }),
    ]);
  });

  it('statuses: sent, delivered and read become events; failed is counted, not stored', () => {
    const r = deliver('whatsapp', fixture('whatsapp-statuses.json'));
    const wamid = 'wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA';
    expect(r.events).toEqual([
      ev('message.sent', 1764001501, ['whatsapp', wamid, 'message.sent'], { sender: 'business' }),
      ev('message.delivered', 1764001502, ['whatsapp', wamid, 'message.delivered'], {}),
      ev('message.read', 1764001503, ['whatsapp', wamid, 'message.read'], {}),
    ]);
    expect(r.ignored).toEqual([{ kind: 'status:failed' }]);
  });

  it('reactions, unsupported messages and other fields are acknowledged and counted', () => {
    const r = deliver('whatsapp', fixture('whatsapp-ignored.json'));
    expect(r.events).toEqual([]);
    expect(r.ignored).toEqual([
      { kind: 'message:reaction' },
      { kind: 'message:unsupported' },
      { kind: 'field:phone_number_quality_update' },
    ]);
  });

  it('user ids are keyed hashes of the number, the same however it is written, never the number', () => {
    const body = (from: string, waId: string) => ({
      object: 'whatsapp_business_account',
      entry: [
        {
          id: WABA,
          changes: [
            {
              field: 'messages',
              value: {
                contacts: [{ profile: { name: 'Sheena Nelson' }, wa_id: waId }],
                messages: [
                  { from, id: 'wamid.X', timestamp: '1764001601', type: 'text', text: { body: 'hi' } },
                ],
              },
            },
          ],
        },
      ],
    });
    const a = deliver('whatsapp', body('16505551234', '16505551234')).events[0];
    const b = deliver('whatsapp', body('+1 650-555-1234', '+16505551234')).events[0];
    expect(a.user_id).toBe(USER);
    expect(b.user_id).toBe(USER);
    expect(JSON.stringify(a)).not.toContain('5551234');
    expect(JSON.stringify(a)).not.toContain('Sheena');
    // Another deployment secret gives unrelated ids.
    const other = deliver('whatsapp', body('16505551234', '16505551234'), {
      businessMap: {},
      hashSecret: 'another-secret',
    }).events[0];
    expect(other.user_id).not.toBe(USER);
  });

  it('a repeated delivery gives the same event ids; ten messages give ten events', () => {
    const a = deliver('whatsapp', fixture('whatsapp-media.json'));
    const b = deliver('whatsapp', fixture('whatsapp-media.json'));
    expect(b.events.map((e) => e.event_id)).toEqual(a.events.map((e) => e.event_id));
    const messages = Array.from({ length: 10 }, (_, i) => ({
      from: '16505551234',
      id: `wamid.TEN_${i}`,
      timestamp: String(1764001700 + i),
      type: 'text',
      text: { body: `number ${i}` },
    }));
    const r = deliver('whatsapp', {
      object: 'whatsapp_business_account',
      entry: [
        { id: WABA, changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', messages } }] },
      ],
    });
    expect(r.events).toHaveLength(10);
    expect(new Set(r.events.map((e) => e.event_id)).size).toBe(10);
  });

  it('renames the business account through the business map; refuses other objects', () => {
    const r = deliver('whatsapp', fixture('whatsapp-order.json'), {
      businessMap: { [WABA]: 'biz_plants' },
      hashSecret: HASH_SECRET,
    });
    expect(r.events[0].business_id).toBe('biz_plants');
    expect(() => adaptWhatsApp({ object: 'page', entry: [] }, { businessMap: {}, hashSecret: 'x' })).toThrow(
      /whatsapp_business_account/,
    );
  });
});
