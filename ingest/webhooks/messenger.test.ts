// Messenger deliveries (fixtures built from Meta's references, see fixtures/SOURCES.md) and the
// exact canonical events they become.
import { describe, expect, it } from 'vitest';
import { eventId } from './common.ts';
import { adaptMessenger } from './messenger.ts';
import { ctx, deliver, fixture } from './test-helpers.ts';

const PAGE = 'biz_barber_42'; // page 104512345678901 renamed by the business map
const PSID = '7012345678901234';
const ev = (
  type: string,
  at: number,
  user: string,
  key: (string | number)[],
  props: Record<string, unknown>,
  business = PAGE,
) => ({
  event_id: eventId(...key),
  type,
  occurred_at: new Date(at).toISOString(),
  business_id: business,
  user_id: user,
  thread_id: `t_${business}_${user}`,
  channel: 'messenger',
  props,
});

describe('Messenger webhooks', () => {
  it('messages: text (reduced to length and keywords), replies, attachments, quick replies, several entries', () => {
    const r = deliver('messenger', fixture('messenger-messages.json'));
    expect(r.rejected).toEqual([]);
    expect(r.ignored).toEqual([]);
    expect(r.events).toEqual([
      ev(
        'message.received',
        1764000001000,
        PSID,
        [
          'messenger',
          'm_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P',
          'message.received',
        ],
        { text_length: 40, keywords: ['haircut'] },
      ),
      ev(
        'message.received',
        1764000002000,
        PSID,
        ['messenger', 'm_1457764197618:41d102a3e1ae206a38', 'message.received'],
        { text_length: 34, keywords: ['saturday'] },
      ),
      ev(
        'message.received',
        1764000003000,
        PSID,
        ['messenger', 'mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c', 'message.received'],
        { has_attachment: true },
      ),
      ev('postback', 1764000004000, PSID, ['messenger', 'm_quickreply_0001', 'postback'], {
        payload: 'SLOT_MORNING',
      }),
      // A quick reply carrying a Parley decision is the click on that sponsored message. The
      // second entry's page is not in the business map, so its id is kept as given.
      ev(
        'sponsored.clicked',
        1764000006000,
        '7098765432109876',
        ['messenger', 'm_quickreply_0002', 'sponsored.clicked'],
        { decision_id: 'dec_7f3a91', campaign_id: 'cmp_spring_cut' },
        '209876543210987',
      ),
    ]);
  });

  it("echoes (also in standby) are the business's own messages: message.sent to the recipient", () => {
    const r = deliver('messenger', fixture('messenger-echoes.json'));
    expect(r.events).toEqual([
      ev(
        'message.sent',
        1764000101000,
        PSID,
        ['messenger', 'mid.1457764197618:41d102a3e1ae206a38', 'message.sent'],
        { sender: 'business', text_length: 40, keywords: ['saturday'] },
      ),
      ev(
        'message.sent',
        1764000102000,
        PSID,
        [
          'messenger',
          'qT7ywaKpO9kkQR7Gv-nM8LIfLZDamVrALniheUYEDdHJXjDXEAyaS1xxONzb2Iv-DFzmTihfWJV012P5pK0AhQ',
          'message.sent',
        ],
        { sender: 'business', text_length: 29 },
      ),
    ]);
  });

  it('deliveries and reads carry the watermark; a delivery without timestamp happens at its watermark', () => {
    const r = deliver('messenger', fixture('messenger-receipts.json'));
    expect(r.events).toEqual([
      ev(
        'message.delivered',
        1764000201000,
        PSID,
        ['messenger', '104512345678901', PSID, 'delivered', 1764000201000],
        { watermark: 1764000201000 },
      ),
      ev('message.read', 1764000203000, PSID, ['messenger', '104512345678901', PSID, 'read', 1764000202000], {
        watermark: 1764000202000,
      }),
    ]);
  });

  it('postbacks: payload and title, a referral on a first postback as its own event, decisions as sponsored.clicked', () => {
    const r = deliver('messenger', fixture('messenger-postbacks.json'));
    expect(r.events).toEqual([
      ev(
        'postback',
        1764000301000,
        '7011111111111111',
        ['messenger', 'm_postback_get_started_01', 'postback'],
        { payload: 'GET_STARTED', title: 'Get Started' },
      ),
      ev(
        'referral',
        1764000301000,
        '7011111111111111',
        ['messenger', 'm_postback_get_started_01', 'referral'],
        { source: 'ad', ref: 'spring_promo', ad_id: '6045246247433' },
      ),
      ev(
        'sponsored.clicked',
        1764000302000,
        PSID,
        ['messenger', 'm_postback_offer_02', 'sponsored.clicked'],
        { decision_id: 'dec_7f3a92', campaign_id: 'cmp_spring_cut' },
      ),
      // The postback reference's timestamps are strings of seconds.
      ev('postback', 1764000303000, PSID, ['messenger', 'm_postback_menu_03', 'postback'], {
        payload: 'MENU_HOURS',
        title: 'Opening hours',
      }),
    ]);
  });

  it('referrals: m.me shortlinks, ads in an existing thread, and an ad referral on a first message (both events)', () => {
    const r = deliver('messenger', fixture('messenger-referrals.json'));
    expect(r.events).toEqual([
      ev(
        'referral',
        1764000401000,
        PSID,
        ['messenger', '104512345678901', PSID, '1764000401000', 'referral'],
        { source: 'shortlink', ref: 'flyer_march' },
      ),
      ev(
        'referral',
        1764000402000,
        PSID,
        ['messenger', '104512345678901', PSID, '1764000402000', 'referral'],
        { source: 'ad', ref: 'beard_trim', ad_id: '6045246247434' },
      ),
      ev(
        'message.received',
        1764000403000,
        '7022222222222222',
        ['messenger', 'm_first_message_from_ad', 'message.received'],
        { text_length: 32 },
      ),
      ev(
        'referral',
        1764000403000,
        '7022222222222222',
        ['messenger', 'm_first_message_from_ad', 'referral'],
        { source: 'ad', ref: 'beard_trim', ad_id: '6045246247434' },
      ),
    ]);
  });

  it('opt-ins: notification messages are marketing; "STOP NOTIFICATIONS" is an opt-out; plugin opt-ins allow all', () => {
    const r = deliver('messenger', fixture('messenger-optins.json'));
    const key = (ts: number, type: string, status: string) => [
      'messenger',
      '104512345678901',
      PSID,
      String(ts),
      type,
      status,
    ];
    expect(r.events).toEqual([
      ev('optin', 1764000501000, PSID, key(1764000501000, 'optin', ''), {
        scope: 'marketing',
        ref: 'weekly_offers',
      }),
      ev('optout', 1764000502000, PSID, key(1764000502000, 'optout', 'STOP NOTIFICATIONS'), {
        scope: 'marketing',
        ref: 'weekly_offers',
      }),
      ev('optin', 1764000503000, PSID, key(1764000503000, 'optin', 'RESUME NOTIFICATIONS'), {
        scope: 'marketing',
        ref: 'weekly_offers',
      }),
      ev(
        'optin',
        1764000504000,
        'checkbox_user_ref_42',
        ['messenger', '104512345678901', 'checkbox_user_ref_42', '1764000504000', 'optin', ''],
        { scope: 'all', ref: 'checkout_page' },
      ),
    ]);
  });

  it('handovers: control passed to this app → bot, taken by the inbox → agent; the rest is acknowledged and counted', () => {
    const r = deliver('messenger', fixture('messenger-handovers.json'));
    expect(r.events).toEqual([
      ev(
        'handover',
        1764000601000,
        PSID,
        ['messenger', '104512345678901', PSID, '1764000601000', 'handover', '123456789'],
        { to: 'bot' },
      ),
      ev(
        'handover',
        1764000602000,
        PSID,
        ['messenger', '104512345678901', PSID, '1764000602000', 'handover', '263902037430900'],
        { to: 'agent' },
      ),
    ]);
    expect(r.ignored).toEqual([
      { kind: 'request_thread_control' },
      { kind: 'reaction' },
      { kind: 'message_edit' },
    ]);
  });

  it('a delivered-again delivery gives the same event ids', () => {
    const a = deliver('messenger', fixture('messenger-messages.json'));
    const b = deliver('messenger', JSON.parse(JSON.stringify(fixture('messenger-messages.json'))));
    expect(b.events.map((e) => e.event_id)).toEqual(a.events.map((e) => e.event_id));
    expect(new Set(a.events.map((e) => e.event_id)).size).toBe(a.events.length);
  });

  it('a delivery with ten messages gives ten events', () => {
    const messaging = Array.from({ length: 10 }, (_, i) => ({
      sender: { id: PSID },
      recipient: { id: '104512345678901' },
      timestamp: 1764000700000 + i,
      message: { mid: `m_ten_${i}`, text: `message number ${i}` },
    }));
    const r = deliver('messenger', {
      object: 'page',
      entry: [{ id: '104512345678901', time: 1764000700100, messaging }],
    });
    expect(r.events).toHaveLength(10);
    expect(new Set(r.events.map((e) => e.event_id)).size).toBe(10);
    expect(r.events.every((e) => e.type === 'message.received' && e.props.text === undefined)).toBe(true);
  });

  it('unknown items and malformed parts are ignored, never fatal; a non-Messenger body is refused', () => {
    const r = adaptMessenger(
      {
        object: 'page',
        entry: [
          {
            id: '104512345678901',
            messaging: [
              {
                sender: { id: PSID },
                recipient: { id: 'p' },
                timestamp: 1764000800000,
                future_feature: { x: 1 },
              },
              'junk',
              { recipient: { id: 'p' }, timestamp: 1, message: { mid: 'm' } },
            ],
          },
          { time: 1 },
          { id: 'p2', changes: [{ field: 'feed', value: {} }] },
        ],
      },
      ctx,
    );
    expect(r.events).toEqual([]);
    expect(r.ignored).toEqual([
      { kind: 'future_feature' },
      { kind: 'malformed_item' },
      { kind: 'message_without_user' },
      { kind: 'entry_without_id' },
      { kind: 'field:feed' },
    ]);
    expect(() => adaptMessenger({ object: 'instagram', entry: [] }, ctx)).toThrow(/object "page"/);
    expect(() => adaptMessenger([], ctx)).toThrow(/entry/);
  });

  it('caps long payloads at the canonical limit instead of rejecting the tap', () => {
    const payload = 'P'.repeat(1000);
    const r = deliver('messenger', {
      object: 'page',
      entry: [
        {
          id: '1',
          messaging: [
            {
              sender: { id: PSID },
              recipient: { id: '1' },
              timestamp: 1764000900000,
              postback: { mid: 'm_long', title: 'T', payload },
            },
          ],
        },
      ],
    });
    expect(r.rejected).toEqual([]);
    expect(r.events[0].props.payload).toBe('P'.repeat(512));
  });
});

describe('Messenger deliveries the store could not keep', () => {
  const message = (sender: string, mid: string) => ({
    sender: { id: sender },
    recipient: { id: '104512345678901' },
    timestamp: 1764000001000,
    message: { mid, text: 'hello' },
  });
  it('are refused event by event with the reason; the rest of the delivery is accepted', () => {
    // Meta escapes non-ASCII, so a lone surrogate arrives as \ud800 in valid JSON.
    const body = JSON.parse(
      JSON.stringify({
        object: 'page',
        entry: [
          {
            id: '104512345678901',
            time: 1764000005000,
            messaging: [message('x\ud800y', 'm_1'), message('7'.repeat(124), 'm_2'), message(PSID, 'm_3')],
          },
        ],
      }),
    );
    const out = deliver('messenger', body);
    expect(out.events.map((e) => e.user_id)).toEqual([PSID]);
    expect(out.rejected.map((r) => r.error)).toEqual([
      'user_id: contains invalid Unicode (a lone UTF-16 surrogate)',
      expect.stringMatching(/^thread_id: the default thread_id .* would be 140 characters \(at most 128\)/),
    ]);
  });
});
