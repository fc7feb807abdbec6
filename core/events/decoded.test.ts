import { describe, expect, it } from 'vitest';
import type { InMessage } from '../bus/types.ts';
import { eventOf, typeOf } from './decoded.ts';

const msg = (value: string): InMessage => ({
  topic: 't',
  partition: 0,
  offset: 0n,
  key: 'k',
  value: Buffer.from(value),
  timestamp: 0,
  headers: {},
});

describe('decoded events', () => {
  it('parses a message once however many consumers read it', () => {
    const m = msg('{"event_id":"e1","type":"message.received","user_id":"u"}');
    const a = eventOf(m);
    expect(a).toMatchObject({ event_id: 'e1', user_id: 'u' });
    expect(eventOf(m)).toBe(a);
    expect(typeOf(m)).toBe('message.received');
  });

  it('reads the type of JSON written in another key order by parsing it', () => {
    const m = msg('{"type":"order.placed","event_id":"e2"}');
    expect(typeOf(m)).toBe('order.placed');
  });

  it('throws for an unreadable message every time, and has no type for it', () => {
    const m = msg('{"event_id":"e3",');
    expect(() => eventOf(m)).toThrow(SyntaxError);
    expect(() => eventOf(m)).toThrow(SyntaxError);
    expect(typeOf(m)).toBeUndefined();
    expect(typeOf(msg('42'))).toBeUndefined();
  });
});
