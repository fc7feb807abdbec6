import { describe, expect, it } from 'vitest';
import { HeldWindow } from './held.ts';

describe('HeldWindow', () => {
  it('holds values by offset and drops what every reader has read past', () => {
    const w = new HeldWindow<string>(1000);
    for (let o = 10; o < 20; o++) w.set(o, `v${o}`, 10);
    expect(w.get(9)).toBeUndefined();
    expect(w.get(15)).toBe('v15');
    w.trim(15);
    expect(w.size).toBe(5);
    expect(w.get(14)).toBeUndefined();
    expect(w.get(15)).toBe('v15');
    w.delete(16);
    expect(w.get(16)).toBeUndefined();
    expect(w.size).toBe(4);
  });

  it('drops the oldest beyond its cost bound, replacing a value without counting it twice', () => {
    const w = new HeldWindow<number>(100);
    for (let o = 0; o < 50; o++) w.set(o, o, 10);
    expect(w.size).toBe(10);
    expect(w.get(39)).toBeUndefined();
    expect(w.get(40)).toBe(40);
    w.set(45, -45, 10);
    expect(w.size).toBe(10);
    expect(w.get(45)).toBe(-45);
  });

  it('fits values set a little out of order from the floor readers are at, and skips gaps', () => {
    const w = new HeldWindow<string>(1000);
    w.set(105, 'b', 1, 100); // empty: the span starts where readers are, at 100
    w.set(101, 'a', 1, 100);
    w.set(120, 'c', 1); // offsets written by another process in between stay empty
    expect([w.get(101), w.get(105), w.get(110), w.get(120)]).toEqual(['a', 'b', undefined, 'c']);
    expect(w.size).toBe(3);
    w.set(99, 'too old', 1);
    expect(w.get(99)).toBeUndefined();
    // Far ahead: what is held is given up.
    w.set(5_000_000, 'far', 1);
    expect(w.size).toBe(1);
    expect(w.get(5_000_000)).toBe('far');
  });
});
