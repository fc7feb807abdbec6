import { createHash, createHmac } from 'node:crypto';

// Meta's normalisation for matching keys: email trimmed and lower-cased; phone digits only,
// with country code, without leading zeros.
export const normalizeEmail = (email: string) => email.trim().toLowerCase();
export const normalizePhone = (phone: string) => phone.replace(/\D+/g, '').replace(/^0+/, '');

export const sha256Hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
export const hashEmail = (email: string) => sha256Hex(normalizeEmail(email));
export const hashPhone = (phone: string) => sha256Hex(normalizePhone(phone));

/** A stable pseudonymous id for a raw identifier such as a phone number (keyed, so not reversible by lookup). */
export const keyedId = (secret: string, raw: string, prefix = 'u_') =>
  prefix + createHmac('sha256', secret).update(raw, 'utf8').digest('hex').slice(0, 32);

/** Configured keywords (lower case) that occur in the text as whole words or phrases. */
export function matchKeywords(text: string, keywords: readonly string[]): string[] {
  if (keywords.length === 0) return [];
  const hay = ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ')} `;
  return keywords.filter((k) => hay.includes(` ${k} `));
}
