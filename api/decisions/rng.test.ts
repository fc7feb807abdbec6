import { describe, expect, it } from 'vitest';
import { sampleBeta, sampleGamma, seededRng } from './rng.ts';

// The samplers Thompson sampling draws from: exact distributions (checked against known CDFs and
// moments) and the same draws for the same seed.

/** The Kolmogorov–Smirnov distance between samples and a CDF. */
function ksDistance(samples: number[], cdf: (x: number) => number) {
  const xs = [...samples].sort((a, b) => a - b);
  let d = 0;
  xs.forEach((x, i) => {
    const f = cdf(x);
    d = Math.max(d, (i + 1) / xs.length - f, f - i / xs.length);
  });
  return d;
}

const N = 20_000;
/** The distance a correct sampler stays under but with probability 0.001. */
const KS_001 = 1.95 / Math.sqrt(N);

describe('samplers', () => {
  it('draw Beta with its exact distribution where the CDF is known', () => {
    const rng = seededRng(2026);
    const cases: [number, number, (x: number) => number][] = [
      [1, 1, (x) => x],
      [3, 1, (x) => x ** 3],
      [1, 4, (x) => 1 - (1 - x) ** 4],
      [0.5, 1, (x) => Math.sqrt(x)],
      [2, 2, (x) => x * x * (3 - 2 * x)],
    ];
    for (const [a, b, cdf] of cases) {
      const draws = Array.from({ length: N }, () => sampleBeta(a, b, rng));
      expect(ksDistance(draws, cdf), `Beta(${a}, ${b})`).toBeLessThan(KS_001);
    }
  });

  it('draw Beta and Gamma with the right mean and variance, small shapes and a click-rate posterior', () => {
    const rng = seededRng(11);
    const moments = (draws: number[]) => {
      const mean = draws.reduce((s, x) => s + x, 0) / draws.length;
      return { mean, variance: draws.reduce((s, x) => s + (x - mean) ** 2, 0) / (draws.length - 1) };
    };
    for (const shape of [0.3, 1, 7.5, 1000]) {
      const m = moments(Array.from({ length: N }, () => sampleGamma(shape, rng)));
      // Mean and variance of Gamma(k, 1) are both k.
      expect(Math.abs(m.mean - shape), `Gamma(${shape}) mean`).toBeLessThan(5 * Math.sqrt(shape / N));
      expect(m.variance / shape, `Gamma(${shape}) variance`).toBeGreaterThan(0.9);
      expect(m.variance / shape, `Gamma(${shape}) variance`).toBeLessThan(1.1);
    }
    for (const [a, b] of [
      [13, 988],
      [0.5, 1.5],
    ]) {
      const m = moments(Array.from({ length: N }, () => sampleBeta(a, b, rng)));
      const mean = a / (a + b);
      const variance = (a * b) / ((a + b) ** 2 * (a + b + 1));
      expect(Math.abs(m.mean - mean), `Beta(${a}, ${b}) mean`).toBeLessThan(5 * Math.sqrt(variance / N));
      expect(m.variance / variance, `Beta(${a}, ${b}) variance`).toBeGreaterThan(0.9);
      expect(m.variance / variance, `Beta(${a}, ${b}) variance`).toBeLessThan(1.1);
    }
  });

  it('draw x and y of a Beta independently: Beta(1, 1) pairs of successive draws are uncorrelated', () => {
    const rng = seededRng(5);
    const draws = Array.from({ length: N }, () => sampleBeta(1, 1, rng));
    let c = 0;
    for (let i = 1; i < N; i++) c += (draws[i] - 0.5) * (draws[i - 1] - 0.5);
    // Each product has variance 1/144: the mean of N stays within 5 standard errors of 0.
    expect(Math.abs(c / (N - 1))).toBeLessThan(5 / 12 / Math.sqrt(N));
  });

  it('give the same draws for the same seed, whatever other generators draw in between', () => {
    const alone = seededRng(9);
    const first = Array.from({ length: 200 }, (_, i) => sampleBeta(1 + (i % 5), 50, alone));
    const again = seededRng(9);
    const other = seededRng(10);
    const second = Array.from({ length: 200 }, (_, i) => {
      sampleGamma(2.5, other);
      const x = sampleBeta(1 + (i % 5), 50, again);
      sampleBeta(3, 1, other);
      return x;
    });
    expect(second).toEqual(first);
  });
});
