import { z } from 'zod';
import { CHANNELS, EVENT_TYPES, PROP_NAME } from '../events/schema.ts';
import { LIMITS, type Rule, validateRule } from './rule.ts';

// The segment rule language as a zod schema, for HTTP bodies and the OpenAPI document. A rule is
// checked first by validateRule, whose messages say what to change; only a rule it accepts
// reaches the shape below, which then accepts it too (a property test holds the two together).
// What JSON Schema cannot say (depth, the number of performed clauses, bounds that contradict
// each other) is in the descriptions.

const FIELD = new RegExp(`^props\\.${PROP_NAME.source.slice(1, -1)}$`);
const inList = <T extends z.ZodType>(value: T) =>
  z.strictObject({ in: z.array(value).min(1).max(LIMITS.maxInValues) });
const channel = z.enum(CHANNELS);
const value = z.union([z.string().max(LIMITS.maxStringLength), z.number(), z.boolean()]);
const bound = z.number();
const range = z
  .strictObject({ gte: bound, gt: bound, lte: bound, lt: bound })
  .partial()
  .meta({ minProperties: 1, description: 'Number bounds; the lower bound may not exceed the upper one' });

const where = z
  .object({ channel: z.union([channel, inList(channel)]).optional() })
  .catchall(z.union([value, inList(value), range]))
  .meta({
    // The keys besides channel: props.<name>, a name ingest accepts (checked by validateRule).
    propertyNames: { anyOf: [{ const: 'channel' }, { pattern: FIELD.source }] },
    description:
      'field → condition: "channel" takes a channel name or {"in": [...]}; "props.<name>" takes a value, {"in": [values]} or number bounds {"gte"|"gt"|"lte"|"lt": n}',
    examples: [{ channel: 'whatsapp', 'props.value': { gte: 10 } }],
  });
const count = z
  .strictObject({
    gte: z.number().int().min(0).max(LIMITS.maxCount),
    lte: z.number().int().min(0).max(LIMITS.maxCount),
  })
  .partial()
  .meta({ minProperties: 1, description: 'How many times: lte may not be below gte; default at least once' });

const performed = z.strictObject({
  performed: z.enum(EVENT_TYPES),
  where: where.optional(),
  count: count.optional(),
  within_seconds: z
    .number()
    .int()
    .min(1)
    .max(LIMITS.maxWithinSeconds)
    .optional()
    .describe('Only events in the last so many seconds; leave out to count all history'),
});
const group = () => z.array(ruleShape).min(1).max(LIMITS.maxChildren);
const ruleShape: z.ZodType<Rule> = z
  .lazy(() =>
    z.union([
      z.strictObject({ all: group() }),
      z.strictObject({ any: group() }),
      z.strictObject({ not: ruleShape }),
      performed,
    ]),
  )
  .meta({
    id: 'SegmentRule',
    description: `Rule := {"all": [Rule…]} | {"any": [Rule…]} | {"not": Rule} | {"performed": TYPE, "where"?: {FIELD: value | {"in": [values]} | {"gte"|"gt"|"lte"|"lt": number}}, "count"?: {"gte"?: int, "lte"?: int}, "within_seconds"?: int}; FIELD is "channel" or "props.<name>". At most ${LIMITS.maxDepth} levels deep and ${LIMITS.maxLeaves} performed clauses. See docs/segments.md.`,
  });

/** A segment rule in an HTTP body: validateRule's issues, each at its path; then its shape. */
export const ruleSchema = z.preprocess((v, ctx) => {
  for (const i of validateRule(v))
    ctx.addIssue({ code: 'custom', message: i.message, path: i.path, input: v });
  return v;
}, ruleShape);
