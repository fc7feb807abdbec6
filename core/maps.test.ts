import { describe, expect, it } from 'vitest';
import { memoized } from './maps.ts';

describe('memoized', () => {
  it('makes each key once while it is remembered, and forgets them all once full', () => {
    const made: string[] = [];
    const upper = memoized(2, (k: string) => {
      made.push(k);
      return k.toUpperCase();
    });
    expect([upper('a'), upper('b'), upper('a')]).toEqual(['A', 'B', 'A']);
    expect(made).toEqual(['a', 'b']);
    expect(upper('c')).toBe('C'); // full: a and b forgotten
    expect(upper('a')).toBe('A');
    expect(made).toEqual(['a', 'b', 'c', 'a']);
  });
});
