import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HmacSha256 } from './hmac.ts';

// The MAC of offer tokens, checked against node:crypto for keys shorter than, as long as and longer
// than a block, and texts across every block boundary.

const ascii = (n: number) =>
  Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(Math.random() * 95))).join('');

describe('HMAC-SHA256', () => {
  it('equals node:crypto for any key length and any ASCII text length', () => {
    for (const keyLength of [0, 1, 16, 32, 63, 64, 65, 100, 200]) {
      const key = randomBytes(keyLength);
      const mac = new HmacSha256(key);
      for (let n = 0; n <= 300; n++) {
        const text = ascii(n);
        const expected = createHmac('sha256', key).update(text).digest('base64url');
        expect(mac.base64url(text)).toBe(expected);
        expect(mac.base64url(text, 22)).toBe(expected.slice(0, 22));
      }
    }
  });

  it("gives every length of MAC, up to 43 characters, as the start of node:crypto's", () => {
    const key = randomBytes(32);
    const mac = new HmacSha256(key);
    for (let n = 0; n < 50; n++) {
      const text = ascii(n);
      const expected = createHmac('sha256', key).update(text).digest('base64url');
      for (let chars = 1; chars <= 43; chars++)
        expect(mac.base64url(text, chars)).toBe(expected.slice(0, chars));
    }
  });

  it('gives texts beyond ASCII the same MAC as node:crypto (UTF-8)', () => {
    const key = randomBytes(32);
    const mac = new HmacSha256(key);
    for (const text of ['émoji 💈', 'o1.d_1.cmp_é.biz.u', '\u0080', `${'a'.repeat(70)}ß`]) {
      expect(mac.base64url(text)).toBe(createHmac('sha256', key).update(text).digest('base64url'));
    }
  });

  it('gives the RFC 4231 test vectors', () => {
    const hex = (key: Buffer, text: string) =>
      Buffer.from(new HmacSha256(key).base64url(text), 'base64url').toString('hex');
    expect(hex(Buffer.alloc(20, 0x0b), 'Hi There')).toBe(
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    );
    expect(hex(Buffer.from('Jefe'), 'what do ya want for nothing?')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
});
