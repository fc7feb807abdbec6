// Seeded randomness for the decision engine: the same seed gives the same decisions, which is
// what the simulation tests and unit tests rely on. Production seeds from the crypto RNG.

export type Rng = () => number;

/** mulberry32: a small, fast generator with a 2^32 period; plenty for sampling. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The second normal of the last pair drawn, until it is used. Only within one call of sampleGamma
 * or sampleBeta, which start without one: the same seed gives the same draws however calls with
 * other generators come between.
 */
let spare = 0;
let hasSpare = false;

/** A standard normal: Marsaglia's polar method, two at a time (no trigonometry), the second kept. */
function normal(rng: Rng): number {
  if (hasSpare) {
    hasSpare = false;
    return spare;
  }
  let u: number;
  let v: number;
  let s: number;
  do {
    u = 2 * rng() - 1;
    v = 2 * rng() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s === 0);
  const m = Math.sqrt((-2 * Math.log(s)) / s);
  spare = v * m;
  hasSpare = true;
  return u * m;
}

/** Gamma(shape, 1) by Marsaglia and Tsang; shape < 1 through the boost Gamma(shape+1)·U^(1/shape). */
export function sampleGamma(shape: number, rng: Rng): number {
  hasSpare = false;
  return gamma(shape, rng);
}

function gamma(shape: number, rng: Rng): number {
  if (shape < 1) return gamma(shape + 1, rng) * rng() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng();
    const x2 = x * x;
    if (u < 1 - 0.0331 * x2 * x2) return d * v;
    if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A draw from Beta(a, b). */
export function sampleBeta(a: number, b: number, rng: Rng): number {
  hasSpare = false;
  const x = gamma(a, rng);
  const y = gamma(b, rng);
  return x / (x + y);
}
