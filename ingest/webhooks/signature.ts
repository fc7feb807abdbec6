// X-Hub-Signature-256 verification for Meta webhooks (Messenger, WhatsApp, Instagram).
// Reference: https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
// Meta signs the payload exactly as it sends it: "sha256=" + hex HMAC-SHA256 of the body bytes,
// keyed with the app secret. Meta serialises non-ASCII characters as escaped unicode
// (é → \u00e9) before signing, so the signature only matches the raw bytes as received — never
// a re-serialisation of the parsed JSON.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-hub-signature-256';

export type SignatureCheck = 'ok' | 'missing' | 'mismatch';

/** The header value Meta would send for this body. */
export function signBody(appSecret: string, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', appSecret).update(body).digest('hex')}`;
}

/** Checks a signature header against the raw body bytes, in constant time for a given length. */
export function verifySignature(
  appSecret: string,
  body: Buffer,
  header: string | string[] | undefined,
): SignatureCheck {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return 'missing';
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(value.trim());
  if (!m) return 'mismatch';
  const given = Buffer.from(m[1].toLowerCase(), 'hex');
  const expected = createHmac('sha256', appSecret).update(body).digest();
  return given.length === expected.length && timingSafeEqual(given, expected) ? 'ok' : 'mismatch';
}
