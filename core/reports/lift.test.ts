import { describe, expect, it } from 'vitest';
import {
  bootstrapMeanDifference,
  logGamma,
  minimumDetectableEffect,
  newcombeDifference,
  normalCdf,
  probabilityGreater,
  relativeLift,
  sampleBinomial,
  seededRandom,
  wilson,
} from './lift.ts';

const r4 = (xs: number[]) => xs.map((x) => +x.toFixed(4));

describe('intervals for two proportions', () => {
  it('Wilson score intervals match Newcombe (1998a), table I', () => {
    expect(r4(wilson(81, 263))).toEqual([0.2553, 0.3662]);
    expect(r4(wilson(15, 148))).toEqual([0.0624, 0.1605]);
    expect(r4(wilson(0, 20))).toEqual([0, 0.1611]);
    expect(r4(wilson(1, 29))).toEqual([0.0061, 0.1718]);
  });

  it('differences match Newcombe (1998b), table II, method 10', () => {
    const cases: [number, number, number, number, number, number][] = [
      [56, 70, 48, 80, 0.0524, 0.3339],
      [9, 10, 3, 10, 0.1705, 0.809],
      [5, 56, 0, 29, -0.0381, 0.1926],
      [0, 10, 0, 20, -0.1611, 0.2775],
      [0, 10, 0, 10, -0.2775, 0.2775],
      [10, 10, 0, 20, 0.6791, 1],
      [10, 10, 0, 10, 0.6075, 1],
    ];
    for (const [x1, n1, x2, n2, low, high] of cases) {
      const d = newcombeDifference(x1, n1, x2, n2);
      expect(r4([d.low, d.high]), `${x1}/${n1} − ${x2}/${n2}`).toEqual([low, high]);
      expect(d.estimate).toBeCloseTo(x1 / n1 - x2 / n2, 12);
    }
  });

  it('relative lift: the Katz log interval of the ratio, minus 1; undefined without conversions', () => {
    // 20/100 vs 10/100: ratio 2, SE(log) = √(1/20 − 1/100 + 1/10 − 1/100) = √0.13.
    const r = relativeLift(20, 100, 10, 100)!;
    expect(r.estimate).toBeCloseTo(1, 12);
    expect(r.low).toBeCloseTo(2 * Math.exp(-1.959964 * Math.sqrt(0.13)) - 1, 5);
    expect(r.high).toBeCloseTo(2 * Math.exp(1.959964 * Math.sqrt(0.13)) - 1, 5);
    expect(+r.low.toFixed(3)).toBe(-0.013);
    expect(+r.high.toFixed(3)).toBe(3.054);
    expect(relativeLift(5, 100, 0, 100)).toBeNull();
  });
});

describe('posterior probability that treatment converts more', () => {
  it('is exact for small counts and symmetric', () => {
    expect(probabilityGreater(0, 0, 0, 0)).toBeCloseTo(0.5, 12);
    // Beta(2, 1) against Beta(1, 1): P = ∫ 2x · x dx = 2/3.
    expect(probabilityGreater(1, 1, 0, 0)).toBeCloseTo(2 / 3, 12);
    // Beta(1, 2) against Beta(1, 1): P = ∫ 2(1 − x) · x dx = 1/3.
    expect(probabilityGreater(0, 1, 0, 0)).toBeCloseTo(1 / 3, 12);
    expect(probabilityGreater(50, 500, 40, 500) + probabilityGreater(40, 500, 50, 500)).toBeCloseTo(1, 9);
  });

  it('agrees with a Monte Carlo estimate, and the normal approximation takes over smoothly', () => {
    const rnd = seededRandom(7);
    // Beta(a, b) as the a-th smallest of a + b − 1 uniforms is slow; use sums of exponentials.
    const gamma = (k: number) => {
      let s = 0;
      for (let i = 0; i < k; i++) s -= Math.log(1 - rnd());
      return s;
    };
    const beta = (a: number, b: number) => {
      const x = gamma(a);
      return x / (x + gamma(b));
    };
    let wins = 0;
    const draws = 20_000;
    for (let i = 0; i < draws; i++) if (beta(13, 88) > beta(9, 92)) wins++;
    expect(Math.abs(probabilityGreater(12, 100, 8, 100) - wins / draws)).toBeLessThan(0.015);
    const exact = probabilityGreater(20_000, 200_000, 19_700, 200_000);
    const approx = probabilityGreater(20_001, 200_000, 19_701, 200_000);
    expect(Math.abs(exact - approx)).toBeLessThan(0.01);
    expect(exact).toBeGreaterThan(0.9);
  });

  it('uses an accurate log-gamma', () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1)).toBeCloseTo(0.158655, 6);
  });
});

describe('minimum detectable effect', () => {
  it('is (1.96 + 0.84)·√(p(1 − p)(1/n1 + 1/n2))', () => {
    // 500 users per group at 10 %: 2.8016 · √(0.09 · 0.004) = 0.05316.
    expect(minimumDetectableEffect(0.1, 500, 500)).toBeCloseTo(0.053156, 5);
    expect(minimumDetectableEffect(0.1, 0, 500)).toBeNull();
  });
});

describe('bootstrap over users', () => {
  it('draws binomials with the right mean and spread, both ways', () => {
    const rnd = seededRandom(3);
    for (const [n, p] of [
      [1000, 0.01],
      [1000, 0.3],
      [1000, 0.97],
    ]) {
      const xs = Array.from({ length: 4000 }, () => sampleBinomial(n, p, rnd));
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
      expect(Math.abs(mean - n * p)).toBeLessThan(4 * Math.sqrt((n * p * (1 - p)) / xs.length));
      expect(variance / (n * p * (1 - p))).toBeGreaterThan(0.9);
      expect(variance / (n * p * (1 - p))).toBeLessThan(1.1);
    }
  });

  it('gives the difference of mean value per user with an interval near the analytic one, seeded', () => {
    const t = { users: 1000, values: Array(100).fill(10) };
    const c = { users: 1000, values: Array(80).fill(10) };
    const d = bootstrapMeanDifference(t, c, 1)!;
    expect(d.estimate).toBeCloseTo(0.2, 12);
    // Analytic: SE = √(100·0.1·0.9/1000 + 100·0.08·0.92/1000) = 0.1279; ±1.96 SE = ±0.2507.
    expect(d.low).toBeGreaterThan(0.2 - 0.2507 - 0.03);
    expect(d.low).toBeLessThan(0.2 - 0.2507 + 0.03);
    expect(d.high).toBeGreaterThan(0.2 + 0.2507 - 0.03);
    expect(d.high).toBeLessThan(0.2 + 0.2507 + 0.03);
    expect(bootstrapMeanDifference(t, c, 1)).toEqual(d);
    expect(bootstrapMeanDifference(t, { users: 0, values: [] }, 1)).toBeNull();
  });
});
