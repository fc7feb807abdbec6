import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHANNELS, EVENT_TYPES } from '../events/schema.ts';
import { validateRule } from './rule.ts';
import { ruleSchema } from './rule-schema.ts';

// The rule's zod schema is what the OpenAPI document shows; validateRule words the errors. Every
// rule validateRule accepts must pass the shape, and a refused one carries exactly its messages.

/** Mostly what the language allows, sometimes something it does not. */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
const num = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.double({ noNaN: true, noDefaultInfinity: true }));
const value = mostly(fc.oneof(fc.string({ maxLength: 4 }), num, fc.boolean()), fc.constant(null));
const channel = mostly(fc.constantFrom(...CHANNELS), fc.constant('telegram'));
const inList = <T>(v: fc.Arbitrary<T>) =>
  mostly(fc.record({ in: fc.array(v, { minLength: 1, maxLength: 3 }) }), fc.record({ in: fc.constant([]) }));
const range = mostly(
  fc
    .record({ gte: num, gt: num, lte: num, lt: num }, { requiredKeys: [] })
    .filter((r) => Object.keys(r).length > 0),
  fc.constantFrom({}, { in: [1], gte: 1 }, { gte: 'x' }),
);
const propCondition = fc.oneof(value, inList(value), range);
const where = mostly(
  fc.record(
    {
      channel: mostly(fc.oneof(channel, inList(channel)), range),
      'props.value': propCondition,
      'props.a_b-1': propCondition,
    },
    { requiredKeys: [] },
  ),
  fc.dictionary(fc.constantFrom('props.', 'props.a.b', 'user_id', 'props.__proto__'), value, {
    minKeys: 1,
    maxKeys: 2,
  }),
);
const count = mostly(
  fc
    .record(
      { gte: fc.integer({ min: 0, max: 4 }), lte: fc.integer({ min: 0, max: 4 }) },
      { requiredKeys: [] },
    )
    .filter((c) => Object.keys(c).length > 0),
  fc.constantFrom({}, { gte: -1 }, { max: 2 }, { gte: 1.5 }),
);
const clause = {
  performed: mostly(fc.constantFrom(...EVENT_TYPES), fc.constant('message.unknown')),
  where,
  count,
  within_seconds: mostly(fc.integer({ min: 1, max: 10 }), fc.constantFrom(0, 1.5, 'x')),
};
const performed = mostly(
  fc.record(clause, { requiredKeys: ['performed'] }),
  fc.record({ ...clause, extra: fc.constant(1) }, { requiredKeys: ['performed', 'extra'] }),
);
const { rule } = fc.letrec((tie) => ({
  rule: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: performed, weight: 6 },
    { arbitrary: fc.record({ all: fc.array(tie('rule'), { minLength: 1, maxLength: 3 }) }), weight: 2 },
    { arbitrary: fc.record({ any: fc.array(tie('rule'), { minLength: 1, maxLength: 3 }) }), weight: 2 },
    { arbitrary: fc.record({ not: tie('rule') }), weight: 2 },
    { arbitrary: fc.constantFrom(0, { all: [] }, { not: 1, any: [] }), weight: 1 },
  ),
}));

describe('the segment rule schema', () => {
  it('accepts exactly the rules validateRule accepts, with its messages', () => {
    let valid = 0;
    fc.assert(
      fc.property(rule, (r) => {
        const issues = validateRule(r);
        const parsed = ruleSchema.safeParse(r);
        expect(parsed.success).toBe(issues.length === 0);
        if (parsed.success) valid++;
        else expect(parsed.error.issues.map((i) => i.message)).toEqual(issues.map((i) => i.message));
      }),
      { numRuns: 2000 },
    );
    // Enough valid rules to mean something.
    expect(valid).toBeGreaterThan(200);
  });
});
