import { z } from 'zod';
import { eventTypeSchema } from '../events/schema.ts';
import { ParleyError } from '../errors.ts';
import { RANGE_FROM, rangeFrom, rangeTo } from '../input.ts';
import { pathColumns } from './funnel-paths.ts';
import { compileWhere, whereSchema } from './where.ts';

// POST /v1/reports/funnel as ONE SQL statement (meanings: docs/reports.md). Each in-scope event
// that matches a step or an exclusion becomes (time, bitmask); per user (and breakdown value) they
// are gathered into one array sorted by time, and funnel-paths.ts turns that array into, per
// step, whether the user reached it and the gap from the previous step; the outer query counts
// users and takes exact medians.
//
// The events are read without FINAL: a stored duplicate (a replayed first copy: the same event_id,
// user, time and type) only repeats an entry (time, bits) of its user's array, and the paths are
// a function of the instants and the step bits each instant carries, which repeats do not change.
// Skipping FINAL spares merging every row on the sort key (event_id included): about 3x faster.

export const stepSchema = z.object({ type: eventTypeSchema, where: whereSchema.optional() }).strict();

export const funnelRequestSchema = z
  .object({
    steps: z.array(stepSchema).min(2).max(10),
    window_seconds: z
      .number()
      .int()
      .min(1)
      .max(366 * 86_400),
    from: rangeFrom.describe(`${RANGE_FROM}, at most 4,000 years apart`),
    to: rangeTo,
    business_id: z.string().min(1).max(128).optional(),
    breakdown: z.enum(['channel', 'business_id']).optional(),
    mode: z.enum(['ordered', 'strict', 'unordered']).default('ordered'),
    exclusions: z
      .array(
        z
          .object({
            type: eventTypeSchema,
            where: whereSchema.optional(),
            between: z
              .tuple([z.number().int().min(1), z.number().int().min(2)])
              .describe(
                'Step numbers [i, j], from 1, with i < j ≤ the number of steps: the excluded event must not happen between reaching step i and step j',
              ),
          })
          .strict(),
      )
      .max(5)
      .default([])
      .describe('Only with mode "ordered" or "strict" (an order of steps)'),
    time_to_convert: z
      .boolean()
      .default(false)
      .describe(
        'Also answer time_to_convert: users who reached the last step, by seconds from the first step to the last (JSON only)',
      ),
  })
  .strict();
export type FunnelRequest = z.output<typeof funnelRequestSchema>;

/** Checks what the schema cannot: time order and exclusion step numbers. */
export function checkFunnel(r: FunnelRequest): void {
  if (!(r.from < r.to)) throw new ParleyError('PARLEY_ERR_VALIDATION', 'from must be before to');
  // Times are packed with their step bits into one Int64 (ms since from, shifted by 15 bits).
  if (r.to - r.from >= 2 ** 47)
    throw new ParleyError('PARLEY_ERR_VALIDATION', 'from and to may be at most 4,000 years apart');
  r.exclusions.forEach((x, i) => {
    const [a, b] = x.between;
    if (!(a < b && b <= r.steps.length)) {
      throw new ParleyError(
        'PARLEY_ERR_VALIDATION',
        `exclusions[${i}].between: needs 1 <= i < j <= ${r.steps.length} (step numbers, from 1)`,
      );
    }
  });
  if (r.mode === 'unordered' && r.exclusions.length) {
    throw new ParleyError(
      'PARLEY_ERR_VALIDATION',
      'exclusions need an order of steps: use mode "ordered" or "strict"',
    );
  }
}

/** One statement: rows {value, users: UInt64[], medians: (Float64|null)[]} per breakdown value. */
export function buildFunnelQuery(db: string, r: FunnelRequest, businesses?: string[]) {
  checkFunnel(r);
  const n = r.steps.length;
  const params: Record<string, unknown> = { from: r.from, to: r.to, window: r.window_seconds * 1000 };
  const bits: string[] = [];
  const types = new Set<string>();
  const cond = (type: string, where: z.infer<typeof whereSchema> | undefined, p: string) => {
    types.add(type);
    params[`${p}_t`] = type;
    const w = compileWhere(where, p);
    Object.assign(params, w.params);
    return `type = {${p}_t:String} AND ${w.sql}`;
  };
  for (const [i, s] of r.steps.entries()) bits.push(`if(${cond(s.type, s.where, `s${i}`)}, ${2 ** i}, 0)`);
  for (const [e, x] of r.exclusions.entries())
    bits.push(`if(${cond(x.type, x.where, `x${e}`)}, ${2 ** (n + e)}, 0)`);
  params.types = [...types];
  const scope = [
    'occurred_at >= fromUnixTimestamp64Milli({from:Int64})',
    'occurred_at < fromUnixTimestamp64Milli({to:Int64})',
    'type IN {types:Array(String)}',
  ];
  if (r.business_id !== undefined) {
    scope.push('business_id = {business_id:String}');
    params.business_id = r.business_id;
  }
  if (businesses) {
    scope.push('business_id IN {businesses:Array(String)}');
    params.businesses = businesses;
  }
  const group = r.breakdown ?? "''";
  // Without a breakdown, users are grouped on user_id alone: a single string key is hashed
  // faster than a pair.
  const perUser = r.breakdown ? { g: 'g', by: 'user_id, g' } : { g: "'' AS g", by: 'user_id' };
  const paths = pathColumns(r);
  const users = paths.reached.map((c) => `countIf(${c})`);
  const medians = paths.gap.map((g, i) =>
    i === 0
      ? "CAST(NULL, 'Nullable(Float64)')"
      : `quantileExactInclusiveIf(0.5)((${g}) / 1000, ${paths.reached[i]})`,
  );
  const ttc = r.time_to_convert ? timeToConvertColumns(r, paths, n) : '';
  const query = `WITH paths AS (
  SELECT g, ${paths.defs.join(',\n    ')}
  FROM (
    SELECT user_id, ${perUser.g}, arraySort(groupArray(bitOr(bitShiftLeft(t, 15), m))) AS ev
    FROM (
      SELECT user_id, ${group} AS g, toInt64(toUnixTimestamp64Milli(occurred_at)) - {from:Int64} AS t, toInt64(${bits.join(' + ')}) AS m
      FROM ${db}.events
      WHERE ${scope.join(' AND ')}
    )
    WHERE m != 0
    GROUP BY ${perUser.by}
  )
)
SELECT toString(g) AS value,
  [${users.join(', ')}] AS users,
  [${medians.join(', ')}] AS medians${ttc}
FROM paths
GROUP BY g
${r.breakdown ? 'HAVING users[1] > 0' : ''}
ORDER BY value`;
  return { query, query_params: params };
}

/** Histogram bounds (seconds) of time to convert; the last bucket ends at the window. */
export const TIME_TO_CONVERT_BOUNDS = [
  0,
  10,
  60,
  300,
  900,
  3600,
  3 * 3600,
  6 * 3600,
  12 * 3600,
  86_400,
  2 * 86_400,
  7 * 86_400,
  14 * 86_400,
  30 * 86_400,
  90 * 86_400,
];

/** The buckets [from, to) of a window: every bound below it, the last one closed at the window. */
export function timeToConvertBuckets(windowSeconds: number) {
  const lows = TIME_TO_CONVERT_BOUNDS.filter((b) => b < windowSeconds);
  return lows.map((from, i) => ({ from_seconds: from, to_seconds: lows[i + 1] ?? windowSeconds }));
}

function timeToConvertColumns(r: FunnelRequest, paths: ReturnType<typeof pathColumns>, n: number) {
  const last = paths.reached[n - 1];
  const buckets = timeToConvertBuckets(r.window_seconds);
  const counts = buckets.map((b, i) =>
    i === buckets.length - 1
      ? `countIf(${last} AND (${paths.total}) >= ${b.from_seconds * 1000})`
      : `countIf(${last} AND (${paths.total}) >= ${b.from_seconds * 1000} AND (${paths.total}) < ${b.to_seconds * 1000})`,
  );
  return `,
  [${counts.join(', ')}] AS ttc_users,
  quantileExactInclusiveIf(0.5)((${paths.total}) / 1000, ${last}) AS ttc_median`;
}

export type TimeToConvert = {
  median_seconds: number | null;
  buckets: { from_seconds: number; to_seconds: number; users: number }[];
};

export type FunnelStep = { type: string; users: number; median_seconds_from_previous: number | null };
export type FunnelRow = {
  value: string;
  users: (number | string)[];
  medians: (number | null)[];
  ttc_users?: (number | string)[];
  ttc_median?: number | null;
};

/** The answer's shape from the statement's rows. */
export type FunnelAnswer =
  | { steps: FunnelStep[]; groups?: undefined; time_to_convert?: TimeToConvert }
  | {
      groups: { value: string; steps: FunnelStep[]; time_to_convert?: TimeToConvert }[];
      steps?: undefined;
      time_to_convert?: undefined;
    };

export function funnelAnswer(r: FunnelRequest, rows: FunnelRow[]): FunnelAnswer {
  const steps = (row: FunnelRow | undefined): FunnelStep[] =>
    r.steps.map((s, k) => {
      const users = Number(row?.users[k] ?? 0);
      const m = row?.medians[k];
      return {
        type: s.type,
        users,
        median_seconds_from_previous:
          k > 0 && users > 0 && m !== null && m !== undefined && Number.isFinite(Number(m))
            ? Number(m)
            : null,
      };
    });
  const ttc = (row: FunnelRow | undefined) => {
    if (!r.time_to_convert) return {};
    const users = row?.ttc_users;
    const median = row?.ttc_median;
    const time_to_convert: TimeToConvert = {
      median_seconds:
        users?.some((u) => Number(u) > 0) &&
        median !== null &&
        median !== undefined &&
        Number.isFinite(Number(median))
          ? Number(median)
          : null,
      buckets: timeToConvertBuckets(r.window_seconds).map((b, i) => ({
        ...b,
        users: Number(users?.[i] ?? 0),
      })),
    };
    return { time_to_convert };
  };
  if (r.breakdown)
    return { groups: rows.map((row) => ({ value: row.value, steps: steps(row), ...ttc(row) })) };
  return { steps: steps(rows[0]), ...ttc(rows[0]) };
}
