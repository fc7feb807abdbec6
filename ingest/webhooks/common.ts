// What the three Meta adapters share: their result shape, ids, times and the Parley decision
// payload. Adapters are pure: a delivery body and a context in, input events and ignored items out.
import { createHash } from 'node:crypto';
import type { Channel, InputEvent } from '../../core/events/schema.ts';
import { impressionEvent, verifyOffer } from '../../core/offers/token.ts';

export type Platform = 'messenger' | 'whatsapp' | 'instagram';

export type AdapterContext = {
  /** Renames platform account ids (page, WhatsApp business account, Instagram account) to business ids. */
  businessMap: Readonly<Record<string, string>>;
  /** Keys the hashes of WhatsApp phone numbers; required for WhatsApp deliveries. */
  hashSecret?: string;
  /** Verifies the offer tokens (delivery tags) that echoes and statuses carry back. */
  offers?: { key: Buffer; holdMs: number; nowMs?: number };
};

export type Ignored = { kind: string };
export type AdaptResult = { events: InputEvent[]; ignored: Ignored[] };

export class DeliveryError extends Error {}

/** A UUID (version 8, name-based) from the platform's own ids, so retries give the same event_id. */
export function eventId(...parts: (string | number)[]): string {
  const h = createHash('sha256').update(parts.join('\u001f')).digest('hex').split('');
  h[12] = '8';
  h[16] = ((Number.parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/**
 * Platform timestamps as ISO strings. Messenger and Instagram send milliseconds, WhatsApp and
 * some Messenger fields send seconds (sometimes as strings): below 1e12 a value is seconds.
 */
export function isoTime(ts: unknown): string | undefined {
  const n = typeof ts === 'string' && ts.trim() !== '' ? Number(ts) : ts;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return undefined;
  return new Date(n < 1e12 ? n * 1000 : n).toISOString();
}

export const businessId = (ctx: AdapterContext, accountId: string) => ctx.businessMap[accountId] ?? accountId;

export const str = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;

export const obj = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** String props are capped at the canonical event's limit rather than rejecting the event. */
export const clip = (v: unknown, max = 512): string | undefined => {
  const s = str(v);
  return s === undefined ? undefined : [...s].slice(0, max).join('');
};

/** Drops undefined props so events compare and serialise cleanly. */
export function props(p: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
}

// A button payload that carries a Parley decision: parley:d:<decision_id>:<campaign_id>
// (docs/webhooks.md). Such a tap becomes sponsored.clicked instead of a postback.
const DECISION = /^parley:d:([A-Za-z0-9_.-]{1,128}):([A-Za-z0-9_.-]{1,128})$/;

export function parseDecisionPayload(
  payload: unknown,
): { decision_id: string; campaign_id: string } | undefined {
  if (typeof payload !== 'string') return undefined;
  const m = DECISION.exec(payload);
  return m ? { decision_id: m[1], campaign_id: m[2] } : undefined;
}

export type Base = { business_id: string; user_id: string; channel: Channel; occurred_at: string };

/** A tap on a button or quick reply: sponsored.clicked for a Parley decision payload, else a postback. */
export function tapEvent(base: Base, key: (string | number)[], payload: unknown, title: unknown): InputEvent {
  const decision = parseDecisionPayload(payload);
  if (decision)
    return {
      ...base,
      event_id: eventId(...key, 'sponsored.clicked'),
      type: 'sponsored.clicked',
      props: decision,
    };
  return {
    ...base,
    event_id: eventId(...key, 'postback'),
    type: 'postback',
    props: props({ payload: clip(payload), title: clip(title) }),
  };
}

/**
 * The impression a delivery tag records: a Messenger/Instagram echo's `metadata` or a WhatsApp
 * status's `biz_opaque_callback_data` carrying a Parley offer token. Strings that are not offer
 * tokens are the business's own and pass unnoticed; a forged, altered or expired token is ignored
 * (and counted), never recorded.
 */
export function impressionFromTag(tag: unknown, ctx: AdapterContext, out: AdaptResult) {
  if (typeof tag !== 'string' || !tag.startsWith('o1.')) return;
  if (!ctx.offers) return void out.ignored.push({ kind: 'delivery_tag:not_configured' });
  const check = verifyOffer(ctx.offers.key, tag, ctx.offers.nowMs ?? Date.now(), ctx.offers.holdMs);
  if (!check.ok) return void out.ignored.push({ kind: `delivery_tag:${check.error}` });
  out.events.push(impressionEvent(check.facts));
}
