import { createHash } from 'node:crypto';

// Seeded randomness for the simulator: the same seed gives the same traffic on every machine.

export type Rng = {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max], both included. */
  int(min: number, max: number): number;
  /** Uniform in [min, max). */
  between(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** One item, chosen with probability proportional to its weight. */
  weighted<T>(items: readonly (readonly [T, number])[]): T;
  /** Exponentially distributed with the given mean. */
  exp(mean: number): number;
};

const words = (label: string) => {
  const d = createHash('sha256').update(label).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)];
};

/** sfc32 seeded from a hash of the label: 128 bits of state, so streams for different labels do not overlap in practice. */
export function createRng(label: string): Rng {
  let [a, b, c, d] = words(label);
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next(); // mix the seed in
  const rng: Rng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    between: (min, max) => min + next() * (max - min),
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(next() * items.length)],
    weighted(items) {
      let total = 0;
      for (const [, w] of items) total += w;
      let r = next() * total;
      for (const [item, w] of items) {
        r -= w;
        if (r < 0) return item;
      }
      return items[items.length - 1][0];
    },
    exp: (mean) => -mean * Math.log(1 - next()),
  };
  return rng;
}

/** A UUID-shaped id from 20 hex digits of a hash and a counter: one hash per stream, not per id. */
export function counterUuid(hex20: string, counter: number): string {
  const variant = ((Number.parseInt(hex20[16], 16) & 0x3) | 0x8).toString(16);
  const tail = counter.toString(16).padStart(12, '0');
  return `${hex20.slice(0, 8)}-${hex20.slice(8, 12)}-8${hex20.slice(13, 16)}-${variant}${hex20.slice(17, 20)}-${tail}`;
}

/** A short deterministic hex id for a label. */
export const stableHex = (label: string, length = 16) =>
  createHash('sha256').update(label).digest('hex').slice(0, length);
