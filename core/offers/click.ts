import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { Config } from '../../core/config.ts';
import { safeEqual } from '../../core/http/auth.ts';
import type { Logger } from '../../core/log.ts';
import { dataDirSecret } from '../secret-file.ts';

// Click URLs carry what the click event needs (decision, campaign, user, business, channel,
// thread, and where to send the user) and an HMAC over all of it, so a click cannot be forged or
// pointed elsewhere. The key derives from PARLEY_HASH_SECRET; without it, one machine keeps a
// generated secret in its data directory, and on Kafka each process makes its own (click URLs
// then verify only on the process that made them, which the log says).

export const CLICK_SECRET_FILE = 'click-secret';

export async function resolveClickKey(
  config: Pick<Config, 'hashSecret' | 'kafka' | 'dataDir'>,
  logger: Logger,
): Promise<Buffer> {
  const derive = (secret: string) => createHmac('sha256', secret).update('parley-click-url-v1').digest();
  if (config.hashSecret) return derive(config.hashSecret);
  if (config.kafka) {
    logger.warn('PARLEY_HASH_SECRET is not set: click URLs verify only on the api process that made them');
    return randomBytes(32);
  }
  return derive(await dataDirSecret(config.dataDir, CLICK_SECRET_FILE));
}

export type ClickFacts = {
  decision_id: string;
  campaign_id: string;
  user_id: string;
  business_id: string;
  channel: string;
  thread_id: string;
  /** Where the user goes after the click; absent: the click answers 204. */
  to?: string;
};

const FIELDS = ['campaign_id', 'user_id', 'business_id', 'channel', 'thread_id', 'to'] as const;
const PARAM: Record<(typeof FIELDS)[number], string> = {
  campaign_id: 'c',
  user_id: 'u',
  business_id: 'b',
  channel: 'ch',
  thread_id: 't',
  to: 'to',
};

export function signClick(key: Buffer, f: ClickFacts): string {
  // One string, one update: the same bytes as field by field, with one call into the hash.
  let text = f.decision_id;
  for (const k of FIELDS) text += `\u0000${f[k] ?? ''}`;
  return createHmac('sha256', key).update(text).digest('base64url').slice(0, 32);
}

export function clickUrl(base: string, key: Buffer, f: ClickFacts): string {
  const q = new URLSearchParams();
  for (const k of FIELDS) if (f[k] !== undefined) q.set(PARAM[k], f[k] as string);
  q.set('s', signClick(key, f));
  return `${base.replace(/\/$/, '')}/v1/decisions/${encodeURIComponent(f.decision_id)}/click?${q}`;
}

/** The facts of a click URL when its signature holds; undefined otherwise. */
export function verifyClick(key: Buffer, decisionId: string, q: Record<string, string | undefined>) {
  const f: ClickFacts = {
    decision_id: decisionId,
    campaign_id: q.c ?? '',
    user_id: q.u ?? '',
    business_id: q.b ?? '',
    channel: q.ch ?? '',
    thread_id: q.t ?? '',
    to: q.to,
  };
  if (!q.s || !f.campaign_id || !f.user_id || !f.business_id || !f.channel || !f.thread_id) return undefined;
  return safeEqual(signClick(key, f), q.s) ? f : undefined;
}

/** One click per decision in storage: repeated clicks of the same URL share an event id. */
export function clickEventId(decisionId: string) {
  const h = createHash('sha256').update(`parley-click:${decisionId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
