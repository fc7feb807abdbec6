import { describe, expect, it } from 'vitest';
import { WindowLimit } from './limits.ts';

describe('WindowLimit', () => {
  it('allows max hits a window per key, then answers the seconds left until the window ends', () => {
    const l = new WindowLimit(3, 60_000);
    const t0 = 1_000_000;
    expect([1, 2, 3].map((i) => l.hit('a', t0 + i))).toEqual([0, 0, 0]);
    expect(l.hit('a', t0 + 10)).toBe(60);
    expect(l.hit('a', t0 + 30_500)).toBe(30);
    expect(l.hit('b', t0 + 30_500)).toBe(0); // each key has its own count
    expect(l.hit('a', t0 + 60_001)).toBe(0); // a new window
  });

  it('tells whether a key is over the limit without counting', () => {
    const l = new WindowLimit(2, 1000);
    expect(l.over('a', 0)).toBe(0);
    l.hit('a', 0);
    l.hit('a', 0);
    expect(l.over('a', 10)).toBe(0); // at the limit, not over it
    expect(l.over('a', 10)).toBe(0);
    l.hit('a', 10);
    expect(l.over('a', 20)).toBe(1);
    expect(l.over('a', 1000)).toBe(0); // the window has ended
  });

  it('remembers a bounded number of keys, forgetting ended windows first', () => {
    const l = new WindowLimit(1, 1000, 100);
    for (let i = 0; i < 100; i++) l.hit(`old${i}`, 0);
    expect(l.keys).toBe(100);
    l.hit('new', 5000); // every earlier window has ended: all are dropped
    expect(l.keys).toBe(1);
    for (let i = 0; i < 99; i++) l.hit(`live${i}`, 5000);
    l.hit('another', 5000); // none has ended: the oldest quarter goes
    expect(l.keys).toBe(76);
    expect(l.hit('live98', 5000)).toBe(1); // a recent key keeps its count
  });
});
