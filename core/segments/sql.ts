import { float64 } from '../store/float64.ts';
import type { Clause, CompiledRule, Leaf, Node } from './rule.ts';

// Compiles a segment rule into one ClickHouse query over `events FINAL` at a time T: a single
// GROUP BY user_id pass with one countIf per performed clause, and the boolean tree in HAVING.
// The rows grouped are exactly the universe (in-scope users with an event at or before T), so
// `not` is evaluated over the universe as DESIGN.md says. Every request value is a bound parameter.

export type Sql = { query: string; query_params: Record<string, unknown> };
export type Scope = { businessId?: string };

export const SAMPLE_SIZE = 20;
const NUMERIC = `('Int64', 'UInt64', 'Double')`;

/** SQL for "this JSON value satisfies the clause"; `args` addresses the value (e.g. `props, {k:String}`). */
function scalarPredicate(c: Clause, args: string, p: string, params: Record<string, unknown>): string {
  const type = `JSONType(${args})`;
  if (c.kind === 'range') {
    const parts = [`${type} IN ${NUMERIC}`];
    const ops = { gte: '>=', gt: '>', lte: '<=', lt: '<' } as const;
    for (const op of ['gte', 'gt', 'lte', 'lt'] as const) {
      const bound = c.range[op];
      if (bound === undefined) continue;
      params[`${p}_${op}`] = float64(bound);
      parts.push(`JSONExtractFloat(${args}) ${ops[op]} {${p}_${op}:Float64}`);
    }
    return `(${parts.join(' AND ')})`;
  }
  const strings = c.values.filter((v): v is string => typeof v === 'string');
  const numbers = c.values.filter((v): v is number => typeof v === 'number');
  const bools = c.values.filter((v): v is boolean => typeof v === 'boolean');
  const alts: string[] = [];
  if (strings.length) {
    params[`${p}_s`] = strings;
    alts.push(`(${type} = 'String' AND JSONExtractString(${args}) IN {${p}_s:Array(String)})`);
  }
  if (numbers.length) {
    params[`${p}_n`] = numbers.map(float64);
    alts.push(`(${type} IN ${NUMERIC} AND JSONExtractFloat(${args}) IN {${p}_n:Array(Float64)})`);
  }
  if (bools.length) {
    params[`${p}_b`] = bools.map(Number);
    alts.push(`(${type} = 'Bool' AND JSONExtractBool(${args}) IN {${p}_b:Array(UInt8)})`);
  }
  return `(${alts.join(' OR ')})`;
}

function clauseSql(c: Clause, p: string, params: Record<string, unknown>): string {
  if (c.prop === undefined && c.kind === 'eq') {
    // channel is a column; the rule schema allows only channel names here.
    params[`${p}_s`] = c.values;
    return `channel IN {${p}_s:Array(String)}`;
  }
  params[`${p}_k`] = c.prop;
  const key = `{${p}_k:String}`;
  // An array prop (e.g. keywords) matches when any of its elements does.
  return `if(JSONType(props, ${key}) = 'Array', arrayExists(x -> ${scalarPredicate(c, 'x', p, params)}, JSONExtractArrayRaw(props, ${key})), ${scalarPredicate(c, `props, ${key}`, p, params)})`;
}

/** The leaf's event filter (type and where); the time window is added by the caller. */
export function leafMatchSql(l: Leaf, params: Record<string, unknown>): string {
  const p = `l${l.index}`;
  params[`${p}_type`] = l.type;
  return [`type = {${p}_type:String}`, ...l.where.map((c, j) => clauseSql(c, `${p}_c${j}`, params))].join(
    ' AND ',
  );
}

function countSql(l: Leaf, params: Record<string, unknown>): string {
  const p = `l${l.index}`;
  const parts: string[] = [];
  if (l.count.gte > 0) {
    parts.push(`c${l.index} >= {${p}_gte:UInt64}`);
    params[`${p}_gte`] = l.count.gte;
  }
  if (l.count.lte !== undefined) {
    parts.push(`c${l.index} <= {${p}_lte:UInt64}`);
    params[`${p}_lte`] = l.count.lte;
  }
  return parts.length ? `(${parts.join(' AND ')})` : '1';
}

export function treeSql(n: Node, params: Record<string, unknown>): string {
  switch (n.kind) {
    case 'all':
      return `(${n.children.map((c) => treeSql(c, params)).join(' AND ')})`;
    case 'any':
      return `(${n.children.map((c) => treeSql(c, params)).join(' OR ')})`;
    case 'not':
      return `(NOT ${treeSql(n.child, params)})`;
    default:
      return countSql(n, params);
  }
}

/** The per-user GROUP BY over in-scope events at or before as_of, filtered by the rule. */
function grouped(
  db: string,
  rule: CompiledRule,
  asOfMs: number,
  scope: Scope,
  params: Record<string, unknown>,
  extraWhere: string[] = [],
) {
  params.as_of = asOfMs;
  const where = ['occurred_at <= fromUnixTimestamp64Milli({as_of:Int64})', ...extraWhere];
  if (scope.businessId !== undefined) {
    where.push('business_id = {business_id:String}');
    params.business_id = scope.businessId;
  }
  const counts = rule.leaves.map((l) => {
    const conds = [leafMatchSql(l, params)];
    if (l.withinMs !== undefined) {
      params[`l${l.index}_from`] = asOfMs - l.withinMs;
      conds.push(`occurred_at > fromUnixTimestamp64Milli({l${l.index}_from:Int64})`);
    }
    return `countIf(${conds.join(' AND ')}) AS c${l.index}`;
  });
  return `SELECT user_id${counts.map((c) => `, ${c}`).join('')}
FROM ${db}.events FINAL
WHERE ${where.join(' AND ')}
GROUP BY user_id
HAVING ${treeSql(rule.root, params)}`;
}

/** Size of the segment at as_of and a sample of member ids. */
export function buildSegmentSizeQuery(db: string, rule: CompiledRule, opts: Scope & { asOfMs: number }): Sql {
  const params: Record<string, unknown> = {};
  const inner = grouped(db, rule, opts.asOfMs, opts, params);
  return {
    query: `SELECT count() AS size, groupArray(${SAMPLE_SIZE})(user_id) AS sample FROM (${inner})`,
    query_params: params,
  };
}

/** Members at as_of in user_id order, after the cursor `after`; every member when limit is absent. */
export function buildSegmentMembersQuery(
  db: string,
  rule: CompiledRule,
  opts: Scope & { asOfMs: number; limit?: number; after?: string },
): Sql {
  const params: Record<string, unknown> = {};
  const extra: string[] = [];
  if (opts.after !== undefined) {
    extra.push('user_id > {after:String}');
    params.after = opts.after;
  }
  let query = `${grouped(db, rule, opts.asOfMs, opts, params, extra)}\nORDER BY user_id`;
  if (opts.limit !== undefined) {
    query += '\nLIMIT {limit:UInt32}';
    params.limit = opts.limit;
  }
  return { query, query_params: params };
}

/**
 * What the streaming evaluator needs to start: per in-scope user, the first event time (the
 * universe) and the events matching some leaf as (event_id, ms, leaf bitmask). Events that fell
 * out of every window they match one window before `nowMs` are left out: time only moves forward,
 * and the window before now is kept to find when current members entered.
 */
export function buildSegmentStateQuery(db: string, rule: CompiledRule, opts: Scope & { nowMs: number }): Sql {
  const params: Record<string, unknown> = {};
  const masks = rule.leaves.map((l) => {
    const conds = [leafMatchSql(l, params)];
    if (l.withinMs !== undefined) {
      params[`l${l.index}_from`] = opts.nowMs - 2 * l.withinMs;
      conds.push(`occurred_at > fromUnixTimestamp64Milli({l${l.index}_from:Int64})`);
    }
    return `toUInt32(${conds.join(' AND ')}) * ${2 ** l.index}`;
  });
  let where = '';
  if (opts.businessId !== undefined) {
    where = 'WHERE business_id = {business_id:String}';
    params.business_id = opts.businessId;
  }
  const query = `SELECT user_id, min(ms) AS first_ms, groupArrayIf((event_id, ms, mask), mask != 0) AS events
FROM (
  SELECT user_id, event_id, toUnixTimestamp64Milli(occurred_at) AS ms, ${masks.join(' + ')} AS mask
  FROM ${db}.events FINAL
  ${where}
)
GROUP BY user_id`;
  return { query, query_params: params };
}
