// The messaging shape Messenger and Instagram share: entry[].messaging[] / entry[].standby[],
// each item with sender, recipient, timestamp and one event object.
// References:
//   https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
//   https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
import type { Channel, InputEvent } from '../../core/events/schema.ts';
import {
  type AdapterContext,
  type AdaptResult,
  type Base,
  DeliveryError,
  arr,
  businessId,
  clip,
  eventId,
  impressionFromTag,
  isoTime,
  obj,
  props,
  str,
  tapEvent,
} from './common.ts';

type Item = Record<string, unknown>;
const ENVELOPE = new Set(['sender', 'recipient', 'timestamp']);

export function adaptMessaging(
  body: unknown,
  object: string,
  channel: Channel,
  ctx: AdapterContext,
): AdaptResult {
  const root = obj(body);
  if (!root || !Array.isArray(root.entry))
    throw new DeliveryError('a delivery is a JSON object with an "entry" array');
  if (root.object !== object) {
    throw new DeliveryError(
      `this endpoint takes deliveries with object "${object}"; this one has "${String(root.object).slice(0, 64)}"`,
    );
  }
  const out: AdaptResult = { events: [], ignored: [] };
  for (const raw of root.entry) {
    const entry = obj(raw);
    const accountId = str(entry?.id);
    if (!entry || !accountId) {
      out.ignored.push({ kind: 'entry_without_id' });
      continue;
    }
    for (const change of arr(entry.changes))
      out.ignored.push({ kind: `field:${str(obj(change)?.field) ?? 'unknown'}` });
    for (const item of [...arr(entry.messaging), ...arr(entry.standby)]) {
      const it = obj(item);
      if (it) adaptItem(it, businessId(ctx, accountId), accountId, channel, entry.time, ctx, out);
      else out.ignored.push({ kind: 'malformed_item' });
    }
  }
  return out;
}

function adaptItem(
  it: Item,
  business: string,
  accountId: string,
  channel: Channel,
  entryTime: unknown,
  ctx: AdapterContext,
  out: AdaptResult,
) {
  const message = obj(it.message);
  const echo = message?.is_echo === true;
  // The user is the sender, except for echoes of the business's own messages.
  const party = obj(echo ? it.recipient : it.sender);
  const user = str(party?.id) ?? str(party?.user_ref);
  const delivery = obj(it.delivery);
  const occurred = isoTime(it.timestamp) ?? isoTime(delivery?.watermark) ?? isoTime(entryTime);
  const kind = Object.keys(it).find((k) => !ENVELOPE.has(k)) ?? 'empty';
  if (!user || !occurred) {
    out.ignored.push({ kind: `${kind}_without_${user ? 'time' : 'user'}` });
    return;
  }
  const base: Base = { business_id: business, user_id: user, channel, occurred_at: occurred };
  const push = (e: InputEvent) => out.events.push(e);
  // A fallback key for items without a message id: same account, user, time and kind.
  const fallback = [channel, accountId, user, String(it.timestamp ?? occurred)];

  if (message) {
    // An echo of a message the ad server sent with an offer's delivery tag is its impression.
    if (echo) impressionFromTag(message.metadata, ctx, out);
    return adaptMessage(message, echo, base, channel, out);
  }
  if (delivery) {
    const watermark = Number(delivery.watermark);
    const key = Number.isFinite(watermark)
      ? [channel, accountId, user, 'delivered', watermark]
      : [...fallback, 'delivered'];
    return push({
      ...base,
      event_id: eventId(...key),
      type: 'message.delivered',
      props: props({ watermark: Number.isFinite(watermark) ? watermark : undefined }),
    });
  }
  const read = obj(it.read);
  if (read) {
    // Messenger reads carry a watermark; Instagram reads (messaging_seen) carry the mid read.
    const watermark = Number(read.watermark);
    const mid = str(read.mid);
    const key = Number.isFinite(watermark)
      ? [channel, accountId, user, 'read', watermark]
      : mid
        ? [channel, mid, 'read']
        : [...fallback, 'read'];
    return push({
      ...base,
      event_id: eventId(...key),
      type: 'message.read',
      props: props({ watermark: Number.isFinite(watermark) ? watermark : undefined }),
    });
  }
  const postback = obj(it.postback);
  if (postback) {
    const mid = str(postback.mid);
    const key = mid ? [channel, mid] : fallback;
    push(tapEvent(base, key, postback.payload, postback.title));
    const referral = obj(postback.referral);
    if (referral) push(referralEvent(base, [...key, 'referral'], referral));
    return;
  }
  const referral = obj(it.referral);
  if (referral) return push(referralEvent(base, [...fallback, 'referral'], referral));
  const optin = obj(it.optin);
  if (optin) return push(optinEvent(base, fallback, optin));
  if (obj(it.pass_thread_control)) {
    // Thread control was passed to this app (the automated side).
    const to = str(obj(it.pass_thread_control)?.new_owner_app_id) ?? '';
    return push({
      ...base,
      event_id: eventId(...fallback, 'handover', to),
      type: 'handover',
      props: { to: 'bot' },
    });
  }
  if (obj(it.take_thread_control)) {
    // Thread control was taken from this app, in practice by the inbox people answer from.
    const to = str(obj(it.take_thread_control)?.new_owner_app_id) ?? '';
    return push({
      ...base,
      event_id: eventId(...fallback, 'handover', to),
      type: 'handover',
      props: { to: 'agent' },
    });
  }
  out.ignored.push({ kind });
}

function adaptMessage(m: Item, echo: boolean, base: Base, channel: Channel, out: AdaptResult) {
  const mid = str(m.mid);
  if (!mid) return void out.ignored.push({ kind: 'message_without_mid' });
  if (m.is_deleted === true) return void out.ignored.push({ kind: 'message_deleted' });
  const attachments = arr(m.attachments).length > 0;
  if (echo) {
    out.events.push({
      ...base,
      event_id: eventId(channel, mid, 'message.sent'),
      type: 'message.sent',
      props: props({ sender: 'business', text: str(m.text) }),
    });
    return;
  }
  const quick = obj(m.quick_reply);
  if (quick) {
    // A quick reply is a tap; its text is the button's label, which is not kept.
    out.events.push(tapEvent(base, [channel, mid], quick.payload, undefined));
  } else if (m.is_unsupported === true && !attachments && m.text === undefined) {
    out.ignored.push({ kind: 'message_unsupported' });
  } else {
    out.events.push({
      ...base,
      event_id: eventId(channel, mid, 'message.received'),
      type: 'message.received',
      props: props({ text: str(m.text), has_attachment: attachments || undefined }),
    });
  }
  const referral = obj(m.referral);
  if (referral) out.events.push(referralEvent(base, [channel, mid, 'referral'], referral));
}

/** Messenger/Instagram referral sources: ADS → ad, m.me / ig.me links → shortlink, the rest other. */
export function referralSource(source: unknown): 'ad' | 'shortlink' | 'other' {
  const s = String(source ?? '').toUpperCase();
  if (s === 'ADS') return 'ad';
  if (s.includes('SHORT') || s.includes('IGME')) return 'shortlink';
  return 'other';
}

function referralEvent(base: Base, key: (string | number)[], r: Item): InputEvent {
  return {
    ...base,
    event_id: eventId(...key),
    type: 'referral',
    props: props({ source: referralSource(r.source), ref: clip(r.ref), ad_id: clip(r.ad_id, 128) }),
  };
}

// Notification messages (marketing) opt-ins carry notification_messages_status when the person
// stops ("STOP NOTIFICATIONS") or resumes them; other opt-ins (plugins) allow any message.
function optinEvent(base: Base, fallback: string[], o: Item): InputEvent {
  const marketing = o.type === 'notification_messages';
  const status = String(o.notification_messages_status ?? '')
    .toUpperCase()
    .replace(/_/g, ' ');
  const type = marketing && status === 'STOP NOTIFICATIONS' ? 'optout' : 'optin';
  return {
    ...base,
    event_id: eventId(...fallback, type, status),
    type,
    props: props({ scope: marketing ? 'marketing' : 'all', ref: clip(o.ref ?? o.payload) }),
  };
}
