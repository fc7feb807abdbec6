// The statistics of the lift report (docs/reports.md, "Lift"), as pure functions: intervals for
// the difference and the ratio of two proportions, the posterior probability that the treatment
// rate is higher, the minimum detectable effect, and a seeded bootstrap over users for value.

/** Standard normal quantiles: two-sided 95 % and one-sided 80 % (power). */
export const Z_95 = 1.959963984540054;
export const Z_POWER_80 = 0.8416212335729143;

export type Interval = { estimate: number; low: number; high: number };

/** Wilson score interval for a proportion x/n (Newcombe 1998, method 3); [0, 1] when n = 0. */
export function wilson(x: number, n: number, z = Z_95): [number, number] {
  if (n === 0) return [0, 1];
  const p = x / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const half = z * Math.sqrt((p * (1 - p) + z2 / (4 * n)) / n);
  const denom = 1 + z2 / n;
  return [Math.max(0, (centre - half) / denom), Math.min(1, (centre + half) / denom)];
}

/**
 * Difference of proportions x1/n1 − x2/n2 with Newcombe's hybrid score interval (1998, method 10):
 * good coverage even with few conversions, and never outside [−1, 1].
 */
export function newcombeDifference(x1: number, n1: number, x2: number, n2: number, z = Z_95): Interval {
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const [l1, u1] = wilson(x1, n1, z);
  const [l2, u2] = wilson(x2, n2, z);
  const d = p1 - p2;
  return {
    estimate: d,
    low: d - Math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
    high: d + Math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
  };
}

/**
 * Relative lift (x1/n1) / (x2/n2) − 1 with the Katz log interval of the ratio. Null when either
 * group has no conversions: the ratio (or its logarithm) is then not defined.
 */
export function relativeLift(x1: number, n1: number, x2: number, n2: number, z = Z_95): Interval | null {
  if (x1 === 0 || x2 === 0 || n1 === 0 || n2 === 0) return null;
  const ratio = x1 / n1 / (x2 / n2);
  const se = Math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2);
  return {
    estimate: ratio - 1,
    low: ratio * Math.exp(-z * se) - 1,
    high: ratio * Math.exp(z * se) - 1,
  };
}

/** The standard normal distribution function (Φ), accurate to about 1e-7. */
export function normalCdf(x: number): number {
  // Abramowitz & Stegun 7.1.26 for erf.
  const t = 1 / (1 + 0.3275911 * (Math.abs(x) / Math.SQRT2));
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(x * x) / 2);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** log Γ(x) for x > 0 (Lanczos, g = 7, 9 terms): about 15 significant digits. */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let a = c[0];
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

const logBeta = (a: number, b: number) => logGamma(a) + logGamma(b) - logGamma(a + b);

/** Above this many treatment conversions the exact sum gives way to the normal approximation. */
const EXACT_LIMIT = 20_000;

/**
 * P(p1 > p2) for p1 ~ Beta(1 + x1, 1 + n1 − x1), p2 ~ Beta(1 + x2, 1 + n2 − x2): the posterior
 * probability that the first group converts more, from uniform priors. Exact (a finite sum over
 * the first group's conversions) up to EXACT_LIMIT, then a normal approximation of the two Betas.
 */
export function probabilityGreater(x1: number, n1: number, x2: number, n2: number): number {
  const a1 = 1 + x1;
  const b1 = 1 + n1 - x1;
  const a2 = 1 + x2;
  const b2 = 1 + n2 - x2;
  if (x1 <= EXACT_LIMIT) {
    let sum = 0;
    const base = logBeta(a2, b2);
    for (let i = 0; i < a1; i++)
      sum += Math.exp(logBeta(a2 + i, b1 + b2) - Math.log(b1 + i) - logBeta(1 + i, b1) - base);
    return Math.min(1, Math.max(0, sum));
  }
  const mean = (a: number, b: number) => a / (a + b);
  const variance = (a: number, b: number) => (a * b) / ((a + b) ** 2 * (a + b + 1));
  return normalCdf((mean(a1, b1) - mean(a2, b2)) / Math.sqrt(variance(a1, b1) + variance(a2, b2)));
}

/**
 * The smallest absolute lift a two-sided 5 % test detects with 80 % power at these group sizes,
 * for a control rate p (normal approximation): (z₀.₉₇₅ + z₀.₈) · √(p(1 − p)(1/n1 + 1/n2)).
 */
export function minimumDetectableEffect(p: number, n1: number, n2: number): number | null {
  if (n1 === 0 || n2 === 0) return null;
  return (Z_95 + Z_POWER_80) * Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
}

/** mulberry32: a small seeded generator; the same seed gives the same bootstrap everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit FNV-1a hash of a label, to seed a bootstrap from what it is about. */
export function seedOf(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Binomial(n, p): skipping geometric gaps while n·p is small, a normal draw above. */
export function sampleBinomial(n: number, p: number, rnd: () => number): number {
  if (p <= 0 || n === 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - sampleBinomial(n, 1 - p, rnd);
  if (n * p < 30) {
    const logQ = Math.log(1 - p);
    let count = 0;
    for (let pos = 0; ; count++) {
      pos += Math.floor(Math.log(1 - rnd()) / logQ) + 1;
      if (pos > n) return count;
    }
  }
  const u = 1 - rnd();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
  return Math.min(n, Math.max(0, Math.round(n * p + z * Math.sqrt(n * p * (1 - p)))));
}

/** One group for the value bootstrap: its users, and the values of those with a non-zero value. */
export type ValueSample = { users: number; values: number[] };

const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

/** The mean of one resample with replacement of `users` users, most of whom have value 0. */
function resampledMean(g: ValueSample, rnd: () => number): number {
  // Resampling n users with replacement draws Binomial(n, k/n) of the k non-zero ones, each uniformly.
  const k = g.values.length;
  const hits = sampleBinomial(g.users, k / g.users, rnd);
  let total = 0;
  for (let i = 0; i < hits; i++) total += g.values[Math.floor(rnd() * k)];
  return total / g.users;
}

/**
 * Difference of mean value per user (treatment − control) with a percentile bootstrap 95 %
 * interval over users, each group resampled on its own. Deterministic for a given seed.
 */
export function bootstrapMeanDifference(
  treatment: ValueSample,
  control: ValueSample,
  seed: number,
  resamples = 2000,
): Interval | null {
  if (treatment.users === 0 || control.users === 0) return null;
  const rnd = seededRandom(seed);
  const diffs = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) diffs[b] = resampledMean(treatment, rnd) - resampledMean(control, rnd);
  diffs.sort();
  const at = (q: number) => diffs[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return {
    estimate: sum(treatment.values) / treatment.users - sum(control.values) / control.users,
    low: at(0.025),
    high: at(0.975),
  };
}
