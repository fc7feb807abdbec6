import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signBody, verifySignature } from './signature.ts';

const SECRET = 'app-secret-for-tests';
const body = Buffer.from('{"object":"page","entry":[]}');
const hmac = (secret: string, b: Buffer | string) =>
  `sha256=${createHmac('sha256', secret).update(b).digest('hex')}`;

describe('X-Hub-Signature-256', () => {
  it('accepts the HMAC-SHA256 of the raw body with the app secret', () => {
    expect(signBody(SECRET, body)).toBe(hmac(SECRET, body));
    expect(verifySignature(SECRET, body, hmac(SECRET, body))).toBe('ok');
    expect(
      verifySignature(SECRET, body, hmac(SECRET, body).toUpperCase().replace('SHA256=', 'sha256=')),
    ).toBe('ok');
  });

  it('refuses a signature made with another secret', () => {
    expect(verifySignature(SECRET, body, hmac('someone-else', body))).toBe('mismatch');
  });

  it('tells a missing header from a forged one', () => {
    expect(verifySignature(SECRET, body, undefined)).toBe('missing');
    expect(verifySignature(SECRET, body, '')).toBe('missing');
    expect(verifySignature(SECRET, body, 'sha256=abc')).toBe('mismatch');
    expect(verifySignature(SECRET, body, hmac(SECRET, body).replace('sha256=', 'sha1='))).toBe('mismatch');
  });

  it('refuses a body changed after signing', () => {
    const sig = hmac(SECRET, body);
    const changed = Buffer.from(body.toString().replace('[]', '[{}]'));
    expect(verifySignature(SECRET, changed, sig)).toBe('mismatch');
    const flipped = Buffer.from(body);
    flipped[flipped.length - 2] ^= 1;
    expect(verifySignature(SECRET, flipped, sig)).toBe('mismatch');
  });

  it('checks the bytes as received: Meta signs the escaped-unicode form, not a re-encoding', () => {
    // Meta sends (and signs) "é" as the six ASCII bytes \u00e9.
    const escaped = Buffer.from('{"text":"caf\\u00e9"}');
    const raw = Buffer.from('{"text":"café"}', 'utf8');
    expect(JSON.parse(escaped.toString())).toEqual(JSON.parse(raw.toString()));
    expect(verifySignature(SECRET, escaped, hmac(SECRET, escaped))).toBe('ok');
    // The same JSON value in other bytes does not carry the escaped form's signature, and vice versa.
    expect(verifySignature(SECRET, raw, hmac(SECRET, escaped))).toBe('mismatch');
    expect(verifySignature(SECRET, escaped, hmac(SECRET, raw))).toBe('mismatch');
    // A sender that signs raw UTF-8 bytes is verified over those bytes.
    expect(verifySignature(SECRET, raw, hmac(SECRET, raw))).toBe('ok');
  });
});
