import { describe, expect, it } from 'vitest';
import { UserSet } from './state.ts';

describe('UserSet', () => {
  it('answers as a Set would, small and after it has turned into a bitset', () => {
    const s = new UserSet();
    const ref = new Set<number>();
    const check = () => {
      for (let u = 0; u < 70_000; u += 7) expect(s.has(u), String(u)).toBe(ref.has(u));
    };
    for (const u of [5, 900, 31, 32, 33]) {
      s.add(u);
      ref.add(u);
    }
    check();
    for (let u = 0; u < 3000; u += 2) {
      s.add(u);
      ref.add(u);
    }
    for (const u of [65_000, 64, 1]) {
      s.add(u); // beyond the bitset's end: it grows
      ref.add(u);
    }
    s.delete(64);
    ref.delete(64);
    s.delete(1_000_000); // never added, beyond the end
    check();
    expect(s.has(1_000_000)).toBe(false);
  });
});
