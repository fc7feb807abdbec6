import { z } from 'zod';
import { eventTypeSchema } from '../events/schema.ts';
import { ParleyError } from '../errors.ts';
import { rangeTime } from '../input.ts';
import { pathColumns } from './funnel-paths.ts';
import { compileWhere, whereSchema } from './where.ts';

// POST /v1/reports/funnel as ONE SQL statement (meanings: docs/reports.md). Each in-scope event
// that matches a step or an exclusion becomes (time, bitmask); per user (and breakdown value) they
// are gathered into one array sorted by time, and funnel-paths.ts turns that array into, per
// step, whether the user reached it and the gap from the previous step; the outer query counts
// users and takes exact medians.

/** A report range bound: ISO-8601 with a zone, or a plain date meaning UTC midnight. */
export const isoTime = rangeTime;

export const stepSchema = z.object({ type: eventTypeSchema, where: whereSchema.optional() }).strict();

export const funnelRequestSchema = z
  .object({
    steps: z.array(stepSchema).min(2).max(10),
    window_seconds: z
      .number()
      .int()
      .min(1)
      .max(366 * 86_400),
    from: isoTime,
    to: isoTime,
    business_id: z.string().min(1).max(128).optional(),
    breakdown: z.enum(['channel', 'business_id']).optional(),
    mode: z.enum(['ordered', 'strict', 'unordered']).default('ordered'),
    exclusions: z
      .array(
        z
          .object({
            type: eventTypeSchema,
            where: whereSchema.optional(),
            between: z.tuple([z.number().int().min(1), z.number().int().min(2)]),
          })
          .strict(),
      )
      .max(5)
      .default([]),
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
  const paths = pathColumns(r);
  const users = paths.reached.map((c) => `countIf(${c})`);
  const medians = paths.gap.map((g, i) =>
    i === 0
      ? "CAST(NULL, 'Nullable(Float64)')"
      : `quantileExactInclusiveIf(0.5)((${g}) / 1000, ${paths.reached[i]})`,
  );
  const query = `WITH paths AS (
  SELECT g, ${paths.defs.join(',\n    ')}
  FROM (
    SELECT user_id, g, arraySort(groupArray(bitOr(bitShiftLeft(t, 15), m))) AS ev
    FROM (
      SELECT user_id, ${group} AS g, toInt64(toUnixTimestamp64Milli(occurred_at)) - {from:Int64} AS t, toInt64(${bits.join(' + ')}) AS m
      FROM ${db}.events FINAL
      WHERE ${scope.join(' AND ')}
    )
    WHERE m != 0
    GROUP BY user_id, g
  )
)
SELECT toString(g) AS value,
  [${users.join(', ')}] AS users,
  [${medians.join(', ')}] AS medians
FROM paths
GROUP BY g
${r.breakdown ? 'HAVING users[1] > 0' : ''}
ORDER BY value`;
  return { query, query_params: params };
}

export type FunnelStep = { type: string; users: number; median_seconds_from_previous: number | null };
export type FunnelRow = { value: string; users: (number | string)[]; medians: (number | null)[] };

/** The answer's shape from the statement's rows. */
export type FunnelAnswer =
  | { steps: FunnelStep[]; groups?: undefined }
  | { groups: { value: string; steps: FunnelStep[] }[]; steps?: undefined };

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
  if (r.breakdown) return { groups: rows.map((row) => ({ value: row.value, steps: steps(row) })) };
  return { steps: steps(rows[0]) };
}
