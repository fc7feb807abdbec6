import { createHash, createHmac } from 'node:crypto';

// HMAC-SHA256 (RFC 2104, FIPS 180-4) of short ASCII texts under one key, for the offer tokens a
// decision signs on its answer's path. The key's inner and outer blocks are hashed once, so a MAC
// is the compression of the text's blocks and one more: no crypto context is made per token (in a
// busy server, setting one up cost several times what it does in a tight loop). The result is the
// same as createHmac('sha256', key).update(text).digest(); texts with other characters go that way.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const IV = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const B64URL_CODES = Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (c) =>
  c.charCodeAt(0),
);

/**
 * One SHA-256 compression of the 16 words in w[0..15] into state h. Four rounds a step, each
 * writing the register the standard's rotation would move into (d and h of FIPS 180-4's round,
 * here d and k), so the eight are renamed once per step instead of moved every round; the message
 * schedule is extended four words a step, as the rounds need them.
 */
function compress(h: Int32Array, w: Int32Array) {
  let a = h[0];
  let b = h[1];
  let c = h[2];
  let d = h[3];
  let e = h[4];
  let f = h[5];
  let g = h[6];
  let k = h[7];
  for (let i = 0; i < 64; i += 4) {
    if (i >= 16)
      for (let j = i; j < i + 4; j++) {
        const x = w[j - 15];
        const y = w[j - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[j] = (w[j - 16] + s0 + w[j - 7] + s1) | 0;
      }
    let t = (k + sigma1(e) + (g ^ (e & (f ^ g))) + K[i] + w[i]) | 0;
    d = (d + t) | 0;
    k = (t + sigma0(a) + ((a & b) | (c & (a | b)))) | 0;
    t = (g + sigma1(d) + (f ^ (d & (e ^ f))) + K[i + 1] + w[i + 1]) | 0;
    c = (c + t) | 0;
    g = (t + sigma0(k) + ((k & a) | (b & (k | a)))) | 0;
    t = (f + sigma1(c) + (e ^ (c & (d ^ e))) + K[i + 2] + w[i + 2]) | 0;
    b = (b + t) | 0;
    f = (t + sigma0(g) + ((g & k) | (a & (g | k)))) | 0;
    t = (e + sigma1(b) + (d ^ (b & (c ^ d))) + K[i + 3] + w[i + 3]) | 0;
    a = (a + t) | 0;
    e = (t + sigma0(f) + ((f & g) | (k & (f | g)))) | 0;
    // After four rounds the registers a..h are what is now in e, f, g, k, a, b, c, d.
    t = a;
    a = e;
    e = t;
    t = b;
    b = f;
    f = t;
    t = c;
    c = g;
    g = t;
    t = d;
    d = k;
    k = t;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + b) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
  h[5] = (h[5] + f) | 0;
  h[6] = (h[6] + g) | 0;
  h[7] = (h[7] + k) | 0;
}

const sigma0 = (a: number) => ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
const sigma1 = (e: number) => ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));

/** The state after one 64-byte block of the key XOR pad. */
function padState(key: Buffer, pad: number, w: Int32Array) {
  const h = new Int32Array(IV);
  for (let i = 0; i < 16; i++) {
    let x = 0;
    for (let j = 0; j < 4; j++) x = (x << 8) | ((key[4 * i + j] ?? 0) ^ pad);
    w[i] = x;
  }
  compress(h, w);
  return h;
}

export class HmacSha256 {
  private readonly key: Buffer;
  private readonly inner: Int32Array;
  private readonly outer: Int32Array;
  private readonly h = new Int32Array(8);
  private readonly w = new Int32Array(64);
  /** The characters of a MAC being written, as codes (one string is made from them at the end). */
  private readonly codes: number[] = [];

  constructor(key: Buffer) {
    this.key = key.length > 64 ? createHash('sha256').update(key).digest() : key;
    this.inner = padState(this.key, 0x36, this.w);
    this.outer = padState(this.key, 0x5c, this.w);
  }

  /** The MAC of text as base64url, its first `chars` characters (at most 43). */
  base64url(text: string, chars = 43): string {
    if (!this.digest(text))
      return createHmac('sha256', this.key).update(text).digest('base64url').slice(0, chars);
    const codes = this.codes;
    codes.length = Math.max(0, Math.min(chars, 43));
    for (let i = 0; i < codes.length; i++) codes[i] = B64URL_CODES[this.sixBits(i)];
    return String.fromCharCode.apply(null, codes);
  }

  /** Bits 6i to 6i+5 of the digest (big-endian; zeros past its end). */
  private sixBits(i: number): number {
    const h = this.h;
    const bit = 6 * i;
    const word = bit >>> 5;
    const off = bit & 31;
    if (off <= 26) return (h[word] >>> (26 - off)) & 63;
    return ((h[word] << (off - 26)) | (word < 7 ? h[word + 1] >>> (58 - off) : 0)) & 63;
  }

  /** Leaves HMAC(key, text) in this.h; false when text has a character beyond ASCII. */
  private digest(text: string): boolean {
    const h = this.h;
    const w = this.w;
    h.set(this.inner);
    const n = text.length;
    // The text after the 64-byte inner block: 0x80, zeros, and the bit length of both.
    const total = n + 9;
    const blocks = Math.ceil(total / 64);
    let p = 0;
    for (let blk = 0; blk < blocks; blk++) {
      for (let i = 0; i < 16; i++) {
        let x = 0;
        for (let j = 0; j < 4; j++) {
          let byte = 0;
          if (p < n) {
            byte = text.charCodeAt(p);
            if (byte > 0x7f) return false;
          } else if (p === n) byte = 0x80;
          x = (x << 8) | byte;
          p++;
        }
        w[i] = x;
      }
      if (blk === blocks - 1) {
        const bitLength = (64 + n) * 8;
        w[14] = Math.floor(bitLength / 0x100000000);
        w[15] = bitLength | 0;
      }
      compress(h, w);
    }
    // The outer hash: the outer block's state, then the inner digest, 0x80 and the bit length.
    for (let i = 0; i < 8; i++) w[i] = h[i];
    w[8] = 0x80000000 | 0;
    for (let i = 9; i < 15; i++) w[i] = 0;
    w[15] = (64 + 32) * 8;
    h.set(this.outer);
    compress(h, w);
    return true;
  }
}
