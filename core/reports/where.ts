import { z } from 'zod';
import { ParleyError } from '../errors.ts';
import { PROP_NAME } from '../events/schema.ts';
import { float64 } from '../store/float64.ts';

// The `where` of a report step: { FIELD: scalar | {in: [...]} | {gte|gt|lte|lt: number} } with
// FIELD "channel" or "props.<name>" (the segment rule language's shape). Every clause must hold.
// A clause on a prop holding an array matches when any element matches (e.g. keywords).
// null matches an absent prop or an explicit null. Ranges match numeric props only.

const scalar = z.union([z.string().max(512), z.number().finite(), z.boolean(), z.null()]);
const range = z
  .object({
    gte: z.number().finite(),
    gt: z.number().finite(),
    lte: z.number().finite(),
    lt: z.number().finite(),
  })
  .partial()
  .strict()
  .refine((r) => Object.keys(r).length > 0, 'a range needs at least one of gte, gt, lte, lt')
  .meta({ minProperties: 1, description: 'A numeric range (numeric props only, not channel)' });
const inList = z.object({ in: z.array(scalar).min(1).max(1000) }).strict();
const condition = z.union([scalar, inList, range]);

/** The rule language's fields: "channel" or "props.<name>" with a name ingest accepts. */
const FIELD = new RegExp(`^(?:channel|props\\.${PROP_NAME.source.slice(1, -1)})$`);
const MAX_FIELDS = 16;
export const whereSchema = z
  .record(
    z.string().regex(FIELD, 'a field is "channel" or "props.<name>" (1 to 64 letters, digits, _ or -)'),
    condition,
  )
  .refine((w) => Object.keys(w).length <= MAX_FIELDS, `at most ${MAX_FIELDS} fields`)
  .meta({
    id: 'Where',
    maxProperties: MAX_FIELDS,
    description:
      'Every field must match. A field is "channel" or "props.<name>"; its condition is a scalar, {"in": [...]}, or a numeric range {gte|gt|lte|lt} (props only: channel takes a channel name or {"in": [...]})',
    examples: [{ channel: 'whatsapp', 'props.value': { gte: 10 } }],
  });
export type Where = z.infer<typeof whereSchema>;
type Scalar = z.infer<typeof scalar>;
type Condition = z.infer<typeof condition>;

const OPS = { gte: '>=', gt: '>', lte: '<=', lt: '<' } as const;

/** SQL (over the events table's columns) for a where; every value and prop name is a bound parameter. */
export function compileWhere(
  where: Where | undefined,
  prefix: string,
): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {};
  const parts: string[] = [];
  let n = 0;
  for (const [field, cond] of Object.entries(where ?? {})) {
    const p = `${prefix}_${n++}`;
    parts.push(
      field === 'channel'
        ? channelSql(cond, p, params)
        : propSql(field.slice('props.'.length), cond, p, params),
    );
  }
  return { sql: parts.length ? parts.map((s) => `(${s})`).join(' AND ') : '1', params };
}

function channelSql(cond: Condition, p: string, params: Record<string, unknown>): string {
  if (typeof cond === 'string') {
    params[p] = cond;
    return `channel = {${p}:String}`;
  }
  if (cond !== null && typeof cond === 'object' && 'in' in cond) {
    params[p] = cond.in.filter((v): v is string => typeof v === 'string');
    return `channel IN {${p}:Array(String)}`;
  }
  if (cond === null || typeof cond !== 'object') return '0'; // a channel is always a string
  throw new ParleyError('PARLEY_ERR_VALIDATION', 'where.channel: a range applies to numeric props only');
}

function propSql(name: string, cond: Condition, p: string, params: Record<string, unknown>): string {
  params[`${p}_k`] = name;
  const k = `{${p}_k:String}`;
  const type = `JSONType(props, ${k})`;
  const num = `${type} IN ('Int64', 'UInt64', 'Double')`;
  if (cond !== null && typeof cond === 'object' && !('in' in cond)) {
    const tests = Object.entries(cond).map(([op, v], i) => {
      params[`${p}_${i}`] = float64(v as number);
      return `JSONExtractFloat(props, ${k}) ${OPS[op as keyof typeof OPS]} {${p}_${i}:Float64}`;
    });
    return `${num} AND ${tests.join(' AND ')}`;
  }
  const values: Scalar[] = cond !== null && typeof cond === 'object' ? cond.in : [cond];
  const strs = values.filter((v): v is string => typeof v === 'string');
  const nums = values.filter((v): v is number => typeof v === 'number');
  const bools = values.filter((v): v is boolean => typeof v === 'boolean');
  const alts: string[] = [];
  if (strs.length) {
    params[`${p}_s`] = strs;
    alts.push(`(${type} = 'String' AND JSONExtractString(props, ${k}) IN {${p}_s:Array(String)})`);
    alts.push(
      `(${type} = 'Array' AND hasAny(JSONExtract(props, ${k}, 'Array(Nullable(String))'), {${p}_s:Array(Nullable(String))}))`,
    );
  }
  if (nums.length) {
    params[`${p}_n`] = nums.map(float64);
    alts.push(`(${num} AND JSONExtractFloat(props, ${k}) IN {${p}_n:Array(Float64)})`);
    alts.push(
      `(${type} = 'Array' AND hasAny(JSONExtract(props, ${k}, 'Array(Nullable(Float64))'), {${p}_n:Array(Nullable(Float64))}))`,
    );
  }
  if (bools.length) {
    params[`${p}_b`] = bools;
    alts.push(`(${type} = 'Bool' AND JSONExtractBool(props, ${k}) IN {${p}_b:Array(Bool)})`);
  }
  if (values.includes(null)) alts.push(`${type} = 'Null'`);
  return alts.join(' OR ') || '0';
}

/** The same meaning in memory: does an event (channel, props) match? */
export function matchWhere(
  where: Where | undefined,
  e: { channel: string; props: Record<string, unknown> },
): boolean {
  for (const [field, cond] of Object.entries(where ?? {})) {
    const v = field === 'channel' ? e.channel : e.props[field.slice('props.'.length)];
    if (!matchValue(v, cond)) return false;
  }
  return true;
}

function matchValue(v: unknown, cond: Condition): boolean {
  if (cond !== null && typeof cond === 'object' && !('in' in cond)) {
    if (typeof v !== 'number') return false;
    return Object.entries(cond).every(([op, x]) =>
      op === 'gte' ? v >= x : op === 'gt' ? v > x : op === 'lte' ? v <= x : v < x,
    );
  }
  const values: Scalar[] = cond !== null && typeof cond === 'object' ? cond.in : [cond];
  if (v === undefined || v === null) return values.includes(null);
  if (Array.isArray(v))
    return v.some((x) => x !== null && typeof x !== 'boolean' && values.includes(x as Scalar));
  return values.includes(v as Scalar);
}
