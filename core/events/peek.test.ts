import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { peekType } from './peek.ts';

describe('peekType', () => {
  it('reads the type of a canonical event', () => {
    const e = { event_id: 'e"1\\', type: 'order.placed', props: { type: 'decoy' } };
    expect(peekType(Buffer.from(JSON.stringify(e)))).toBe('order.placed');
  });

  it('gives up on anything not written event_id first, type second', () => {
    for (const s of [
      '{"type":"order.placed","event_id":"x"}',
      '{"event_id":"x","props":{"type":"a.b"},"type":"c"}',
      '{"event_id":"x"',
      '',
      'null',
    ]) {
      expect(peekType(Buffer.from(s))).toBeUndefined();
    }
  });

  it('agrees with JSON.parse whenever it answers', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.dictionary(fc.string(), fc.string()), (id, type, props) => {
        const buf = Buffer.from(JSON.stringify({ event_id: id, type, props }));
        const peeked = peekType(buf);
        if (peeked !== undefined) expect(peeked).toBe(JSON.parse(buf.toString()).type);
        if (/^[a-z.]+$/.test(type)) expect(peeked).toBe(type);
      }),
      { numRuns: 5000 },
    );
  });
});
