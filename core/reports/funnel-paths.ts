import type { FunnelRequest } from './funnel.ts';

// The per-user part of the funnel statement: from one user's events sorted by time, as arrays
// ts (ms since from) and ms (low bits: bit k-1 = matches step k, bit n+e = exclusion e), compute for
// every step k whether the user reached it and the gap (ms) from step k-1 on the path the docs
// define. Everything is whole-array functions (arrayMap, arrayFill), so the engine runs it as a
// few vectorised passes instead of a loop per event.
//
// Ordered: s_k[i] is the latest start of a path reaching step k at event i (NONE if none):
// s_k[i] = L_{k-1}[i] when event i matches step k and ts[i] - L_{k-1}[i] <= window, where
// L_{k-1}[i] is the live path at step k-1 strictly before ts[i]. Starts only grow along a user's
// events, so the live path is the last one (a forward fill), unless an excluded event since its
// arrival killed it. Strict: the live path must come from the previous instant with a step event.

export const NONE = '-1000000000000000000';
const SKIP = '-2000000000000000000';

/** Per user: whether each step was reached, the gap (ms) from the previous step, and `total`, the
 * time (ms) from the first to the last step on the path that reached the last step. */
export type PathColumns = { defs: string[]; reached: string[]; gap: string[]; total: string };

const shift = (a: string) => `arrayShiftRight(${a}, 1, toInt64(${NONE}))`;
const fill = (a: string) => `arrayFill(v -> v != ${NONE}, ${a})`;
/** Per event: the value of a filled array at the last event strictly earlier in time. */
const prior = (filled: string) => `arrayFill((v, s) -> s, ${shift(filled)}, run)`;
const whereDef = (s: string, v: string) =>
  `arrayMap((x, t) -> if(x != ${NONE}, ${v}, toInt64(${NONE})), ${s}, ts)`;

export function pathColumns(r: FunnelRequest): PathColumns {
  const n = r.steps.length;
  const defs = [
    // ev holds (ms since from) << 15 | step bits, sorted: time order.
    'arrayMap(x -> bitShiftRight(x, 15), ev) AS ts',
    // The step bits are the low bits, so tests on them can read ev itself.
    'ev AS ms',
    // run: the first event of each instant (events at one millisecond share an instant).
    `arrayMap((t, p) -> t != p, ts, ${shift('ts')}) AS run`,
  ];
  return r.mode === 'unordered' ? unordered(n, defs) : ordered(r, n, defs);
}

function unordered(n: number, defs: string[]): PathColumns {
  const reached: string[] = [];
  const gap: string[] = [];
  for (let k = 1; k <= n; k++) {
    defs.push(
      `${fill(`arrayMap((t, m) -> if(bitTest(m, ${k - 1}), t, toInt64(${NONE})), ts, ms)`)} AS seen${k}`,
    );
    const seen = Array.from({ length: k }, (_, j) => `seen${j + 1}`);
    defs.push(
      `arrayMap((t, ${seen.join(', ')}) -> ${seen.map((s) => `${s} >= t - {window:Int64}`).join(' AND ')}, ts, ${seen.join(', ')}) AS cov${k}`,
    );
    defs.push(`if(has(cov${k}, 1), ts[indexOf(cov${k}, 1)], toInt64(${NONE})) AS at${k}`);
    reached.push(`at${k} != ${NONE}`);
    gap.push(k === 1 ? '0' : `at${k} - at${k - 1}`);
  }
  // The steps covering the last step's moment: from the earliest of them to that moment.
  const seen = Array.from({ length: n }, (_, j) => `seen${j + 1}[indexOf(cov${n}, 1)]`);
  return { defs, reached, gap, total: `at${n} - arrayMin([${seen.join(', ')}])` };
}

function ordered(r: FunnelRequest, n: number, defs: string[]): PathColumns {
  const strict = r.mode === 'strict';
  // xe{e}: the time of the latest event of exclusion e strictly before each event.
  for (const e of r.exclusions.keys()) {
    defs.push(
      `${prior(fill(`arrayMap((t, m) -> if(bitTest(m, ${n + e}), t, toInt64(${NONE})), ts, ms)`))} AS xe${e}`,
    );
  }
  if (strict) defs.push(`arrayMap(m -> bitAnd(m, ${2 ** n - 1}) != 0, ms) AS stepev`);
  // Lambda parameters x0, x1, … stand for the xe arrays.
  const xParams = r.exclusions.map((_, e) => `, x${e}`).join('');
  const xArrays = r.exclusions.map((_, e) => `, xe${e}`).join('');
  /** Is a path that arrived at step l at time `arr` dead (an exclusion of steps i..j, i <= l < j, since)? */
  const killed = (l: number, arr: string) => {
    const xs = r.exclusions.flatMap((x, e) => {
      const [i, j] = x.between;
      if (!(i <= l && l < j)) return [];
      // A path reaching step i at the excluded event's instant survives it; later steps do not.
      return [l > i ? `x${e} >= ${arr}` : `x${e} > ${arr}`];
    });
    return xs.length ? `(${xs.join(' OR ')})` : '0';
  };
  const reached: string[] = [];
  const gap: string[] = [];
  for (let k = 1; k <= n; k++) {
    const s = `s${k}`;
    if (k === 1) defs.push(`arrayMap((t, m) -> if(bitTest(m, 0), t, toInt64(${NONE})), ts, ms) AS ${s}`);
    else {
      const cond = `bitTest(m, ${k - 1}) AND ls != ${NONE} AND t - ls <= {window:Int64}`;
      defs.push(`arrayMap((t, m, ls) -> if(${cond}, ls, toInt64(${NONE})), ts, ms, ls${k - 1}) AS ${s}`);
    }
    if (k < n) {
      // The live path at step k before each event: start ls{k}, arrival lt{k}, and la{k}, the
      // first arrival of that start since it was last killed (the time a gap is measured from).
      const arrivals = whereDef(s, 't');
      if (strict) {
        // Within an instant, carry a step's arrival to the instant's last event; across events
        // that match no step (exclusions only), carry the last step instant's value.
        const inRun = (a: string) => `arrayFill((v, st) -> v != ${NONE} OR st, ${a}, run)`;
        const carry = (a: string) =>
          `arrayFill(v -> v != ${SKIP}, arrayMap((v, e) -> if(e, v, toInt64(${SKIP})), ${inRun(a)}, stepev))`;
        defs.push(`${prior(carry(s))} AS rs${k}`, `${prior(carry(arrivals))} AS lt${k}`, `lt${k} AS la${k}`);
        const dead = `v = ${SKIP} OR a = ${SKIP} OR ${killed(k, 'a')}`;
        defs.push(
          `arrayMap((v, a${xParams}) -> if(${dead}, toInt64(${NONE}), v), rs${k}, lt${k}${xArrays}) AS ls${k}`,
        );
      } else {
        const kills = killed(k, 'a') !== '0';
        if (!kills) defs.push(`${prior(fill(s))} AS ls${k}`);
        else {
          defs.push(`${prior(fill(s))} AS rs${k}`, `${prior(fill(arrivals))} AS lt${k}`);
          defs.push(
            `arrayMap((v, a${xParams}) -> if(${killed(k, 'a')}, toInt64(${NONE}), v), rs${k}, lt${k}${xArrays}) AS ls${k}`,
          );
        }
        // A new run of one start begins where the start changes or the previous arrival was
        // killed. Without kills that is simply the start's first arrival (see the gap below).
        if (kills) {
          const fresh = `x != ${NONE} AND (x != ps OR ${killed(k, 'pt')})`;
          const runs = `arrayMap((x, t, ps, pt${xParams}) -> if(${fresh}, t, toInt64(${NONE})), ${s}, ts, ${shift(fill(s))}, ${shift(fill(arrivals))}${xArrays})`;
          defs.push(`${prior(fill(runs))} AS la${k}`);
        }
      }
    }
    // Starts only grow along the events, so the last filled one is the latest (no extra pass).
    const top = !strict && k < n ? `${fill(s)}[-1]` : `arrayMax(${s})`;
    defs.push(`${top} AS top${k}`, `indexOf(${s}, top${k}) AS first${k}`);
    reached.push(`top${k} != ${NONE}`);
    if (k === 1) gap.push('0');
    else if (strict || killed(k - 1, 'a') !== '0') gap.push(`ts[first${k}] - la${k - 1}[first${k}]`);
    // The path's start reached step k-1 first at the first event carrying that start there.
    else gap.push(`ts[first${k}] - ts[indexOf(s${k - 1}, top${k})]`);
  }
  // The path's start is its step-1 time: from there to its first arrival at the last step.
  return { defs, reached, gap, total: `ts[first${n}] - top${n}` };
}
