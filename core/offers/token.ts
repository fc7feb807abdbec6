import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CHANNELS, type CanonicalEvent, type Channel } from '../events/schema.ts';
import { safeEqual } from '../http/auth.ts';
import { HmacSha256 } from './hmac.ts';

// The offer token: everything an impression needs (decision, campaign, business, user, channel,
// thread, price, time) and an HMAC over it, so any process holding the key can turn a delivery
// into an impression without looking anything up, and nobody can forge or alter one.
//
//   o1.<decision>.<campaign>.<business>.<user>.<channel>.<thread>.<price36>.<time36>.<mac>
//
// Ids keep letters, digits, `_` and `-` as they are; any other byte is `~` and two hex digits, so a
// token is safe in a URL path, a query, Messenger `metadata` (< 1000 characters) and WhatsApp
// `biz_opaque_callback_data` (≤ 512). `thread` is empty when it is the default thread of the
// business and user. The MAC is 128 bits of HMAC-SHA256 (22 characters).

export type OfferFacts = {
  decision_id: string;
  campaign_id: string;
  business_id: string;
  user_id: string;
  channel: Channel;
  thread_id: string;
  price_micros: number;
  /** When the offer was made (ms since the epoch); the impression's time. */
  at_ms: number;
};

const VERSION = 'o1';
const MAC_CHARS = 22;
const CHANNEL_CODE = Object.fromEntries(CHANNELS.map((c, i) => [c, i.toString(36)])) as Record<
  Channel,
  string
>;
const defaultThread = (business: string, user: string) => `t_${business}_${user}`;

/** Whether a UTF-16 unit is one an id keeps as it is: A–Z, a–z, 0–9, `_` or `-`. */
function plainUnit(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 45;
}

function encodeId(s: string): string {
  // The fast path: most ids need no escaping at all (a loop, cheaper than a regex on short ids).
  let i = 0;
  while (i < s.length && plainUnit(s.charCodeAt(i))) i++;
  if (i === s.length) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += plainUnit(b) ? String.fromCharCode(b) : `~${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodeId(s: string): string | undefined {
  if (!s.includes('~')) return s;
  if (!/^(?:[A-Za-z0-9_-]|~[0-9A-F]{2})*$/.test(s)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '~') {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(s.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The MAC of each key in use (its padded blocks hashed once). */
const macs = new WeakMap<Buffer, HmacSha256>();
function mac(key: Buffer, body: string): string {
  let m = macs.get(key);
  if (!m) {
    m = new HmacSha256(key);
    macs.set(key, m);
  }
  return m.base64url(body, MAC_CHARS);
}

const B36_LOW = 36 ** 5;
/**
 * n.toString(36). A time in ms is no small integer, and V8 writes those digits slowly (a few
 * hundred ns); as two small integers, the high digits and the five low ones, it is several times faster.
 */
export function base36(n: number): string {
  if (n < 2 ** 31 || !Number.isSafeInteger(n)) return n.toString(36);
  const high = Math.floor(n / B36_LOW);
  return `${high.toString(36)}${(n - high * B36_LOW).toString(36).padStart(5, '0')}`;
}

/** Whether a thread id is `t_<business>_<user>`, without building that string. */
function isDefaultThread(thread: string, business: string, user: string): boolean {
  return (
    thread.length === business.length + user.length + 3 &&
    thread.startsWith('t_') &&
    thread.startsWith(business, 2) &&
    thread.charCodeAt(business.length + 2) === 95 &&
    thread.endsWith(user)
  );
}

export function signOffer(key: Buffer, f: OfferFacts): string {
  const thread = isDefaultThread(f.thread_id, f.business_id, f.user_id) ? '' : encodeId(f.thread_id);
  const body = [
    VERSION,
    encodeId(f.decision_id),
    encodeId(f.campaign_id),
    encodeId(f.business_id),
    encodeId(f.user_id),
    CHANNEL_CODE[f.channel],
    thread,
    base36(f.price_micros),
    base36(f.at_ms),
  ].join('.');
  return `${body}.${mac(key, body)}`;
}

export type TokenCheck =
  | { ok: true; facts: OfferFacts }
  | { ok: false; error: 'malformed' | 'bad_signature' | 'expired' };

const INT36 = /^[0-9a-z]{1,12}$/;
const ID = '(?:[A-Za-z0-9_-]|~[0-9A-F]{2})';
const INT36_PART = '[0-9a-z]{1,12}';
/** Every token signOffer writes has this form (the OpenAPI document shows it); others are malformed. */
export const OFFER_TOKEN = new RegExp(
  `^${VERSION}(?:\\.${ID}+){4}\\.[${Object.values(CHANNEL_CODE).join('')}]\\.${ID}*\\.${INT36_PART}\\.${INT36_PART}\\.[A-Za-z0-9_-]{${MAC_CHARS}}$`,
);
export const MAX_OFFER_TOKEN_LENGTH = 1000;
/**
 * An offer token in a request. Its form is documented, and checked by verifyOffer, whose answers
 * (malformed, bad signature, expired) are the route's own.
 */
export const offerTokenSchema = z.string().max(MAX_OFFER_TOKEN_LENGTH).meta({
  pattern: OFFER_TOKEN.source,
  description:
    'An offer token (a decision’s delivery_tag), signed by Parley: o1.<decision>.<campaign>.<business>.<user>.<channel>.<thread>.<price>.<time>.<signature>. Only tokens Parley made are accepted; a made-up or altered one is refused with 400.',
});

/**
 * The facts of a token when its signature holds and the offer is at most `maxAgeMs` old (and not
 * from the future beyond a minute of clock skew).
 */
export function verifyOffer(key: Buffer, token: unknown, nowMs: number, maxAgeMs: number): TokenCheck {
  if (typeof token !== 'string' || token.length > MAX_OFFER_TOKEN_LENGTH || !OFFER_TOKEN.test(token))
    return { ok: false, error: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 10 || parts[0] !== VERSION) return { ok: false, error: 'malformed' };
  const body = token.slice(0, token.length - parts[9].length - 1);
  if (parts[9].length !== MAC_CHARS || !safeEqual(mac(key, body), parts[9]))
    return { ok: false, error: 'bad_signature' };
  const [, d, c, b, u, ch, t, price, at] = parts;
  const channel = CHANNELS[Number.parseInt(ch, 36)];
  const ids = [d, c, b, u, t].map(decodeId);
  if (
    ids.some((x) => x === undefined) ||
    !ids[0] ||
    !ids[1] ||
    !ids[2] ||
    !ids[3] ||
    !channel ||
    ch.length !== 1 ||
    !INT36.test(price) ||
    !INT36.test(at)
  )
    return { ok: false, error: 'malformed' };
  const [decision, campaign, business, user, thread] = ids as string[];
  const atMs = Number.parseInt(at, 36);
  if (atMs + maxAgeMs < nowMs || atMs > nowMs + 60_000) return { ok: false, error: 'expired' };
  return {
    ok: true,
    facts: {
      decision_id: decision,
      campaign_id: campaign,
      business_id: business,
      user_id: user,
      channel,
      thread_id: thread || defaultThread(business, user),
      price_micros: Number.parseInt(price, 36),
      at_ms: atMs,
    },
  };
}

/** A UUID derived from a name, so the same decision always gives the same event id. */
export function derivedEventId(kind: string, decisionId: string): string {
  const h = createHash('sha256').update(`parley-${kind}:${decisionId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * The impression of an offer: one `sponsored.served` per decision (its event id derives from the
 * decision, so every confirmation of it is the same event), at the time the offer was made, so
 * frequency caps, daily limits and the quiet period count it where the engine held it.
 */
export function impressionEvent(f: OfferFacts): CanonicalEvent {
  return {
    event_id: derivedEventId('impression', f.decision_id),
    type: 'sponsored.served',
    occurred_at: new Date(f.at_ms).toISOString(),
    business_id: f.business_id,
    user_id: f.user_id,
    thread_id: f.thread_id,
    channel: f.channel,
    props: {
      decision_id: f.decision_id,
      campaign_id: f.campaign_id,
      creative_id: f.campaign_id,
      price_micros: f.price_micros,
    },
  };
}
