// WhatsApp Cloud API webhooks (object "whatsapp_business_account", field "messages") → canonical
// input events. References:
//   https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/text/
//   .../messages/interactive, button, order, image, video, location, contacts, reaction, status
// Phone numbers (wa_id, from, recipient_id) and profile names are never kept: the user id is a
// keyed hash of the number (keyedId with the deployment's hash secret), stable across deliveries.
import { keyedId, normalizePhone, sha256Hex } from '../../core/events/privacy.ts';
import type { InputEvent } from '../../core/events/schema.ts';
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

type Obj = Record<string, unknown>;

/** Numbers hash the same with or without "+", spaces or dashes; other ids (business-scoped) as given. */
const userKey = (raw: string) => (/^\+?[\d\s().-]+$/.test(raw) ? normalizePhone(raw) : raw);
const MEDIA = new Set(['image', 'audio', 'video', 'document', 'sticker']);

export function adaptWhatsApp(body: unknown, ctx: AdapterContext): AdaptResult {
  const root = obj(body);
  if (!root || !Array.isArray(root.entry))
    throw new DeliveryError('a delivery is a JSON object with an "entry" array');
  if (root.object !== 'whatsapp_business_account') {
    throw new DeliveryError(
      `this endpoint takes deliveries with object "whatsapp_business_account"; this one has "${String(root.object).slice(0, 64)}"`,
    );
  }
  const secret = ctx.hashSecret;
  if (!secret) throw new Error('WhatsApp deliveries need a hash secret');
  const out: AdaptResult = { events: [], ignored: [] };
  for (const raw of root.entry) {
    const entry = obj(raw);
    const waba = str(entry?.id);
    if (!entry || !waba) {
      out.ignored.push({ kind: 'entry_without_id' });
      continue;
    }
    for (const rawChange of arr(entry.changes)) {
      const change = obj(rawChange);
      const value = obj(change?.value);
      if (change?.field !== 'messages' || !value) {
        out.ignored.push({ kind: `field:${str(change?.field) ?? 'unknown'}` });
        continue;
      }
      const business = businessId(ctx, waba);
      const contacts = arr(value.contacts).map(obj);
      for (const m of arr(value.messages)) adaptMessage(obj(m), business, contacts, secret, out);
      for (const s of arr(value.statuses)) adaptStatus(obj(s), business, secret, ctx, out);
      if (arr(value.errors).length > 0) out.ignored.push({ kind: 'errors' });
      for (const k of Object.keys(value)) {
        if (!['messaging_product', 'metadata', 'contacts', 'messages', 'statuses', 'errors'].includes(k))
          out.ignored.push({ kind: `value:${k}` });
      }
    }
  }
  return out;
}

function adaptMessage(
  m: Obj | undefined,
  business: string,
  contacts: (Obj | undefined)[],
  secret: string,
  out: AdaptResult,
) {
  const id = str(m?.id);
  const type = str(m?.type) ?? 'unknown';
  // The WhatsApp user id (contacts[].wa_id, also what statuses name as recipient_id) when the
  // delivery has it, else the sender's number (messages[].from).
  const from = str(m?.from);
  const contact =
    contacts.length === 1
      ? contacts[0]
      : contacts.find((c) => from && userKey(str(c?.wa_id) ?? '') === userKey(from));
  const phone = str(contact?.wa_id) ?? from ?? str(contact?.user_id);
  const occurred = isoTime(m?.timestamp);
  if (!m || !id || !phone || !occurred) {
    out.ignored.push({ kind: `message_without_${!id ? 'id' : !phone ? 'sender' : 'time'}` });
    return;
  }
  const base: Base = {
    business_id: business,
    user_id: keyedId(secret, userKey(phone)),
    channel: 'whatsapp',
    occurred_at: occurred,
  };
  const received = (p: Obj): InputEvent => ({
    ...base,
    event_id: eventId('whatsapp', id, 'message.received'),
    type: 'message.received',
    props: props(p),
  });
  const body = obj(m[type]);

  if (type === 'text') out.events.push(received({ text: str(body?.body) }));
  else if (MEDIA.has(type)) out.events.push(received({ text: str(body?.caption), has_attachment: true }));
  else if (type === 'location' || type === 'contacts') out.events.push(received({ has_attachment: true }));
  else if (type === 'button') out.events.push(tapEvent(base, ['whatsapp', id], body?.payload, body?.text));
  else if (type === 'interactive') {
    const kind = str(body?.type) ?? 'unknown';
    const reply = obj(body?.[kind]);
    if ((kind === 'button_reply' || kind === 'list_reply') && reply)
      out.events.push(tapEvent(base, ['whatsapp', id], reply.id, reply.title));
    else out.ignored.push({ kind: `interactive:${kind}` });
  } else if (type === 'order') {
    const order = orderValue(body);
    // The order id is the SHA-256 of the message id: a wamid encodes the sender's number, so it is
    // not kept as is, and the business (which has the wamid) can compute the same id.
    if (order)
      out.events.push({
        ...base,
        event_id: eventId('whatsapp', id, 'order.placed'),
        type: 'order.placed',
        props: props({ order_id: sha256Hex(id), ...order }),
      });
    else out.ignored.push({ kind: 'order_without_items' });
  } else out.ignored.push({ kind: `message:${type}` });

  // A Click-to-WhatsApp ad (or post) referral rides on the first message of the conversation.
  const referral = obj(m.referral);
  if (referral) {
    const ad = referral.source_type === 'ad';
    out.events.push({
      ...base,
      event_id: eventId('whatsapp', id, 'referral'),
      type: 'referral',
      props: props({
        source: ad ? 'ad' : 'other',
        ad_id: ad ? clip(referral.source_id, 128) : undefined,
        ctwa_clid: clip(referral.ctwa_clid),
      }),
    });
  }
}

/** value = Σ item_price × quantity over the order's product items; currency from the items. */
export function orderValue(order: Obj | undefined): { value: number; currency?: string } | undefined {
  const items = arr(order?.product_items).map(obj);
  if (items.length === 0) return undefined;
  let cents = 0;
  for (const it of items) {
    const price = Number(it?.item_price);
    const qty = Number(it?.quantity);
    if (!Number.isFinite(price) || !Number.isFinite(qty) || price < 0 || qty < 0) return undefined;
    cents += Math.round(price * qty * 100);
  }
  return {
    value: cents / 100,
    currency: clip(
      items.map((i) => i?.currency).find((c) => typeof c === 'string'),
      16,
    ),
  };
}

const STATUS_TYPES: Record<string, InputEvent['type']> = {
  sent: 'message.sent',
  delivered: 'message.delivered',
  read: 'message.read',
};

function adaptStatus(
  s: Obj | undefined,
  business: string,
  secret: string,
  ctx: AdapterContext,
  out: AdaptResult,
) {
  const status = str(s?.status) ?? 'unknown';
  const type = STATUS_TYPES[status];
  const id = str(s?.id);
  const recipient = str(s?.recipient_id);
  const occurred = isoTime(s?.timestamp);
  if (!type || !id || !recipient || !occurred) {
    // Failed sends are counted (webhookItemsIgnored{kind="status:failed"}), not stored as events.
    out.ignored.push({ kind: `status:${type ? 'incomplete' : status}` });
    return;
  }
  // A sent or delivered message that carries an offer's delivery tag is its impression.
  if (type !== 'message.read') impressionFromTag(s?.biz_opaque_callback_data, ctx, out);
  out.events.push({
    event_id: eventId('whatsapp', id, type),
    type,
    occurred_at: occurred,
    business_id: business,
    user_id: keyedId(secret, userKey(recipient)),
    channel: 'whatsapp',
    props: type === 'message.sent' ? { sender: 'business' } : {},
  });
}
