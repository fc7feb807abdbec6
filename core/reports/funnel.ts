import { z } from 'zod';
import { eventTypeSchema } from '../events/schema.ts';
import { ParleyError } from '../errors.ts';
import { compileWhere, whereSchema } from './where.ts';

// POST /v1/reports/funnel as ONE SQL statement (meanings: docs/reports.md). Per user (and
// breakdown value) the in-scope events that match a step or an exclusion are reduced to one
// (time, bitmask) per distinct millisecond, sorted, and folded left to right. The fold keeps, per
// step k, the live path with the latest start that has reached step k (a later start leaves more
// of the window, and every live path at one step meets the same future), plus a record of the
// best path that ever reached k: its start, its time at step k-1 and at step k.

export const isoTime = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));

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

const NONE = '-1000000000000000000';

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
  const fold =
    r.mode === 'unordered' ? unorderedFold(n) : orderedFold(n, r.mode === 'strict', r.exclusions, params);
  const query = `WITH marks AS (
  SELECT user_id, ${group} AS g, toInt64(toUnixTimestamp64Milli(occurred_at)) AS t, groupBitOr(toUInt32(${bits.join(' + ')})) AS m
  FROM ${db}.events FINAL
  WHERE ${scope.join(' AND ')}
  GROUP BY user_id, g, t
  HAVING m != 0
), paths AS (
  SELECT g, ${fold} AS st
  FROM marks
  GROUP BY user_id, g
)
SELECT toString(g) AS value,
  sumForEach(arrayMap(r -> toUInt64(r.3 != ${NONE}), st)) AS users,
  quantileExactInclusiveIfForEach(0.5)(arrayMap(r -> (r.5 - r.4) / 1000, st), arrayMap((r, k) -> r.3 != ${NONE} AND k > 1, st, range(1, ${n + 1}))) AS medians
FROM paths
GROUP BY g
${r.breakdown ? 'HAVING users[1] > 0' : ''}
ORDER BY value`;
  return { query, query_params: params };
}

/**
 * State per step k: (live start, live time at k, record start, record time at k-1, record time
 * at k). x = (t, mask). A candidate extends the live path at k-1 (or starts one, at k = 1).
 */
function orderedFold(
  n: number,
  strict: boolean,
  exclusions: FunnelRequest['exclusions'],
  params: Record<string, unknown>,
): string {
  const stepMask = 2 ** n - 1;
  params.ex_i = exclusions.map((x) => x.between[0]);
  params.ex_j = exclusions.map((x) => x.between[1]);
  // An excluded event kills live paths at steps i..j-1, except one that reaches step i at that instant.
  const ex = (l: string, fresh: boolean) =>
    exclusions.length
      ? `arrayExists(e -> bitTest(x.2, ${n} + e - 1) AND {ex_i:Array(UInt8)}[e] <= ${l} AND ${l} < {ex_j:Array(UInt8)}[e]${fresh ? ` AND ${l} > {ex_i:Array(UInt8)}[e]` : ''}, range(1, ${exclusions.length + 1}))`
      : '0';
  const killOld = ex('k', false);
  const killNew = ex('j', true);
  const prev = 'acc[greatest(j - 1, 1)]';
  const reach = `bitTest(x.2, j - 1) AND (j = 1 OR (${prev}.1 != ${NONE} AND x.1 - ${prev}.1 <= {window:Int64}))`;
  const candStart = `if(j = 1, x.1, ${prev}.1)`;
  const candPrev = `if(j = 1, x.1, ${prev}.2)`;
  const oldAlive = `a.1 != ${NONE} AND NOT ${killOld}${strict ? ` AND bitAnd(x.2, ${stepMask}) = 0` : ''}`;
  const cands = `arrayMap(j -> (${reach}, ${candStart}, ${candPrev}, ${killNew}), range(1, ${n + 1}))`;
  const step = `arrayMap((a, c, k) -> (
      if(c.1 AND NOT c.4 AND (NOT (${oldAlive}) OR c.2 > a.1), c.2, if(${oldAlive}, a.1, ${NONE})),
      if(c.1 AND NOT c.4 AND (NOT (${oldAlive}) OR c.2 > a.1), x.1, if(${oldAlive}, a.2, ${NONE})),
      if(c.1 AND c.2 > a.3, c.2, a.3),
      if(c.1 AND c.2 > a.3, c.3, a.4),
      if(c.1 AND c.2 > a.3, x.1, a.5)),
    acc, ${cands}, range(1, ${n + 1}))`;
  const init = `arrayWithConstant(${n}, (toInt64(${NONE}), toInt64(${NONE}), toInt64(${NONE}), toInt64(${NONE}), toInt64(${NONE})))`;
  return `arrayFold((acc, x) -> ${step}, arraySort(groupArray((t, m))), ${init})`;
}

/**
 * State per step k: (last time step k was seen, -, time steps 1..k were first all seen within
 * one window, that time at k-1, same at k). The record fields line up with the ordered fold.
 */
function unorderedFold(n: number): string {
  const seen = `arrayMap((a, j) -> if(bitTest(x.2, j - 1), x.1, a.1), acc, range(1, ${n + 1}))`;
  const covered = `arrayMap(j -> arrayMin(arraySlice(s, 1, j)) >= x.1 - {window:Int64}, range(1, ${n + 1}))`;
  const step = `arrayMap((a, c, j) -> (c.1, toInt64(0), if(a.3 = ${NONE} AND c.2, x.1, a.3), if(a.3 = ${NONE} AND c.2, if(j = 1, x.1, if(acc[greatest(j - 1, 1)].3 = ${NONE}, x.1, acc[greatest(j - 1, 1)].3)), a.4), if(a.3 = ${NONE} AND c.2, x.1, a.5)),
    acc, arrayMap((v, c) -> (v, c), ${seen}, arrayMap(s -> ${covered}, [${seen}])[1]), range(1, ${n + 1}))`;
  const init = `arrayWithConstant(${n}, (toInt64(${NONE}), toInt64(0), toInt64(${NONE}), toInt64(${NONE}), toInt64(${NONE})))`;
  return `arrayFold((acc, x) -> ${step}, arraySort(groupArray((t, m))), ${init})`;
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
