// Instagram messaging deliveries (fixture built from Meta's reference, see fixtures/SOURCES.md).
import { describe, expect, it } from 'vitest';
import { eventId } from './common.ts';
import { adaptInstagram } from './instagram.ts';
import { ctx, deliver, fixture } from './test-helpers.ts';

const IGID = '17841405822304914';
const IGSID = '1140112233445566';
const ev = (type: string, at: number, key: (string | number)[], props: Record<string, unknown>) => ({
  event_id: eventId(...key),
  type,
  occurred_at: new Date(at).toISOString(),
  business_id: IGID,
  user_id: IGSID,
  thread_id: `t_${IGID}_${IGSID}`,
  channel: 'instagram',
  props,
});

describe('Instagram webhooks', () => {
  it('messages, echoes inside messages, reads by mid, postbacks and ig.me referrals', () => {
    const r = deliver('instagram', fixture('instagram-messaging.json'));
    expect(r.rejected).toEqual([]);
    expect(r.events).toEqual([
      ev(
        'message.received',
        1764001601000,
        ['instagram', 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE0', 'message.received'],
        { text_length: 44 },
      ),
      ev(
        'message.sent',
        1764001602000,
        ['instagram', 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE1', 'message.sent'],
        { sender: 'business', text_length: 26 },
      ),
      ev(
        'message.read',
        1764001603000,
        ['instagram', 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE1', 'read'],
        {},
      ),
      ev(
        'postback',
        1764001604000,
        ['instagram', 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE2', 'postback'],
        { payload: 'ICEBREAKER_SHIPPING', title: 'Shipping rates' },
      ),
      ev('referral', 1764001605000, ['instagram', IGID, IGSID, '1764001605000', 'referral'], {
        source: 'shortlink',
        ref: 'bio_link',
      }),
    ]);
    expect(r.ignored).toEqual([{ kind: 'reaction' }, { kind: 'message_deleted' }]);
  });

  it('the same mid on Messenger and Instagram gives different event ids; deliveries repeat identically', () => {
    const a = deliver('instagram', fixture('instagram-messaging.json'));
    const b = deliver('instagram', fixture('instagram-messaging.json'));
    expect(b.events).toEqual(a.events);
    expect(eventId('instagram', 'm', 'message.received')).not.toBe(
      eventId('messenger', 'm', 'message.received'),
    );
  });

  it('takes only object "instagram"', () => {
    expect(() => adaptInstagram({ object: 'page', entry: [] }, ctx)).toThrow(/object "instagram"/);
  });
});
