import { describe, expect, it } from 'vitest';
import { compileRule, formatIssues, LIMITS, matchesClause, RuleError, validateRule } from './rule.ts';
import { ruleSchema } from './rule-schema.ts';

const messages = (r: unknown) => validateRule(r).map((i) => `${i.path.join('.')}: ${i.message}`);

describe('validateRule', () => {
  it('accepts the grammar of DESIGN.md', () => {
    const rule = {
      all: [
        { performed: 'message.received', count: { gte: 3 }, within_seconds: 30 * 86400 },
        { not: { performed: 'appointment.booked' } },
        {
          any: [
            { performed: 'referral', where: { 'props.source': { in: ['ad', 'shortlink'] } } },
            {
              performed: 'order.placed',
              where: { 'props.value': { gte: 10, lt: 100 }, channel: 'whatsapp' },
            },
          ],
        },
        {
          performed: 'message.received',
          where: { 'props.has_attachment': true, 'props.text_length': 42 },
          count: { lte: 2 },
        },
      ],
    };
    expect(validateRule(rule)).toEqual([]);
    expect(ruleSchema.safeParse(rule).success).toBe(true);
  });

  it('names the valid event types when one is unknown', () => {
    const [m] = messages({ performed: 'message.recieved' });
    expect(m).toContain('performed: unknown event type "message.recieved"');
    expect(m).toContain('message.received');
    expect(m).toContain('order.placed');
  });

  it('allows only channel and props.<name> as fields', () => {
    expect(messages({ performed: 'order.placed', where: { value: 3 } })[0]).toMatch(
      /^where\.value: unknown field "value"; fields are "channel" and "props.<name>"/,
    );
    expect(messages({ performed: 'order.placed', where: { 'props.': 3 } })[0]).toContain('unknown field');
    expect(messages({ performed: 'order.placed', where: { 'props.a b': 3 } })[0]).toContain('unknown field');
    expect(messages({ performed: 'order.placed', where: { channel: 'telegram' } })[0]).toContain(
      'unknown channel "telegram"; channels: messenger',
    );
    expect(messages({ performed: 'order.placed', where: { channel: { gte: 1 } } })[0]).toContain(
      'not number bounds',
    );
  });

  it('rejects empty groups, bad shapes and unknown keys', () => {
    expect(messages({ all: [] })[0]).toContain('"all" needs at least one rule');
    expect(messages({ any: [] })[0]).toContain('"any" needs at least one rule');
    expect(messages({ all: {} })[0]).toContain('takes a list');
    expect(messages({})[0]).toContain('needs one of "all", "any", "not" or "performed"');
    expect(messages({ all: [{ performed: 'optin' }], any: [{ performed: 'optin' }] })[0]).toContain(
      'exactly one',
    );
    expect(messages({ performed: 'optin', count_min: 2 })[0]).toContain('unknown key "count_min"');
    expect(messages('optin')[0]).toContain('a rule must be an object');
    expect(
      messages({ performed: 'order.placed', where: { 'props.value': { between: [1, 2] } } })[0],
    ).toContain('a condition is a value');
    expect(messages({ performed: 'order.placed', where: { 'props.value': { in: [] } } })[0]).toContain(
      'non-empty list',
    );
    expect(messages({ performed: 'order.placed', where: { 'props.value': null } })[0]).toContain(
      'string, a number or true/false',
    );
    expect(
      messages({ performed: 'order.placed', where: { 'props.value': { gte: 10, lt: 5 } } })[0],
    ).toContain('cannot all hold');
  });

  it('rejects negative, fractional and absurd windows', () => {
    expect(messages({ performed: 'optin', within_seconds: -5 })[0]).toContain('at least 1');
    expect(messages({ performed: 'optin', within_seconds: 0 })[0]).toContain('at least 1');
    expect(messages({ performed: 'optin', within_seconds: 1.5 })[0]).toContain('whole number');
    expect(messages({ performed: 'optin', within_seconds: LIMITS.maxWithinSeconds + 1 })[0]).toContain(
      'milliseconds by mistake',
    );
    expect(messages({ performed: 'optin', within_seconds: LIMITS.maxWithinSeconds })).toEqual([]);
  });

  it('rejects lte below gte and bad counts', () => {
    expect(messages({ performed: 'optin', count: { gte: 5, lte: 2 } })[0]).toBe(
      'count.lte: lte (2) is below gte (5): no user could match',
    );
    expect(messages({ performed: 'optin', count: {} })[0]).toContain('needs "gte", "lte" or both');
    expect(messages({ performed: 'optin', count: { gte: -1 } })[0]).toContain('0 or more');
    expect(messages({ performed: 'optin', count: { gte: 1, max: 3 } })[0]).toContain('unknown key "max"');
  });

  it('limits nesting depth and size', () => {
    let deep: unknown = { performed: 'optin' };
    for (let i = 0; i < LIMITS.maxDepth; i++) deep = { not: deep };
    expect(messages(deep)[0]).toContain(`at most ${LIMITS.maxDepth} levels`);
    let ok: unknown = { performed: 'optin' };
    for (let i = 0; i < LIMITS.maxDepth - 1; i++) ok = { not: ok };
    expect(messages(ok)).toEqual([]);
    const many = { any: Array.from({ length: LIMITS.maxLeaves + 1 }, () => ({ performed: 'optin' })) };
    expect(messages(many).join()).toContain(`at most ${LIMITS.maxLeaves} "performed" clauses`);
  });

  it('reports every problem at once with paths', () => {
    const issues = validateRule({ all: [{ performed: 'nope' }, { performed: 'optin', within_seconds: -1 }] });
    expect(issues.map((i) => i.path.join('.'))).toEqual(['all.0.performed', 'all.1.within_seconds']);
    expect(formatIssues(issues)).toMatch(
      /^rule\.all\.0\.performed: unknown event type "nope".*; rule\.all\.1\.within_seconds: /,
    );
  });
});

describe('compileRule', () => {
  it('normalises leaves in document order with the default count', () => {
    const c = compileRule({
      any: [
        { performed: 'message.received', within_seconds: 60 },
        {
          not: {
            performed: 'order.placed',
            where: { 'props.value': { gt: 5 }, channel: { in: ['sms', 'webchat'] } },
            count: { lte: 1 },
          },
        },
      ],
    });
    expect(c.leaves.map((l) => [l.index, l.type, l.count, l.withinMs])).toEqual([
      [0, 'message.received', { gte: 1 }, 60_000],
      [1, 'order.placed', { gte: 0, lte: 1 }, undefined],
    ]);
    expect(c.leaves[1].where).toEqual([
      { field: 'props.value', prop: 'value', kind: 'range', range: { gt: 5 } },
      { field: 'channel', prop: undefined, kind: 'eq', values: ['sms', 'webchat'] },
    ]);
  });

  it('throws a RuleError carrying the issues', () => {
    expect(() => compileRule({ all: [] })).toThrow(RuleError);
  });
});

describe('matchesClause', () => {
  const eq = (values: (string | number | boolean)[]) => ({
    field: 'props.x',
    prop: 'x',
    kind: 'eq' as const,
    values,
  });
  it('compares scalars by type and value', () => {
    expect(matchesClause(eq(['1']), 1)).toBe(false);
    expect(matchesClause(eq([1]), 1)).toBe(true);
    expect(matchesClause(eq([true]), 1)).toBe(false);
    expect(matchesClause(eq([true]), true)).toBe(true);
    expect(matchesClause(eq(['a', 'b']), 'b')).toBe(true);
    expect(matchesClause(eq(['a']), undefined)).toBe(false);
  });
  it('matches arrays when an element does, and ranges only numbers', () => {
    expect(matchesClause(eq(['haircut']), ['beard', 'haircut'])).toBe(true);
    expect(matchesClause(eq(['x']), [])).toBe(false);
    const r = { field: 'props.x', prop: 'x', kind: 'range' as const, range: { gte: 1, lt: 3 } };
    expect(matchesClause(r, 1)).toBe(true);
    expect(matchesClause(r, 3)).toBe(false);
    expect(matchesClause(r, '2')).toBe(false);
    expect(matchesClause(r, [0, 2])).toBe(true);
  });
});
