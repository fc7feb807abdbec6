import { CHANNELS, EVENT_TYPES, type EventType, PROP_NAME } from '../events/schema.ts';
import { unknownKeysMessage } from '../input.ts';

// The segment rule language (DESIGN.md, Segments). A rule arrives as JSON from a marketer; it is
// checked here with messages that say what to change, then turned into a normalised tree that
// the SQL compiler, the reference evaluator and the streaming evaluator all read.

export type Scalar = string | number | boolean;
export type Range = { gte?: number; gt?: number; lte?: number; lt?: number };
export type WhereValue = Scalar | { in: Scalar[] } | Range;
export type PerformedRule = {
  performed: EventType;
  where?: Record<string, WhereValue>;
  count?: { gte?: number; lte?: number };
  within_seconds?: number;
};
export type Rule = { all: Rule[] } | { any: Rule[] } | { not: Rule } | PerformedRule;

/** One `where` clause: eq matches any of `values`; range needs a number within every bound. */
export type Clause =
  | { field: string; prop?: string; kind: 'eq'; values: Scalar[] }
  | { field: string; prop?: string; kind: 'range'; range: Range };
export type Leaf = {
  kind: 'leaf';
  /** Position among the rule's leaves, in document order. */
  index: number;
  type: EventType;
  where: Clause[];
  count: { gte: number; lte?: number };
  withinMs?: number;
};
export type Node =
  | { kind: 'all'; children: Node[] }
  | { kind: 'any'; children: Node[] }
  | { kind: 'not'; child: Node }
  | Leaf;
export type CompiledRule = { root: Node; leaves: Leaf[] };

export const LIMITS = {
  maxDepth: 8,
  maxChildren: 50,
  maxLeaves: 30,
  maxInValues: 100,
  maxCount: 1_000_000,
  /** Five years: longer windows are almost always a unit mistake (milliseconds for seconds). */
  maxWithinSeconds: 5 * 365 * 24 * 3600,
  maxStringLength: 512,
} as const;

export type RuleIssue = { path: (string | number)[]; message: string };

const OPS = ['gte', 'gt', 'lte', 'lt'] as const;
const PERFORMED_KEYS = ['performed', 'where', 'count', 'within_seconds'];
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const quote = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);

/** Checks a rule; returns every problem found (empty when the rule is valid). */
export function validateRule(input: unknown): RuleIssue[] {
  const issues: RuleIssue[] = [];
  let leaves = 0;
  const add = (path: (string | number)[], message: string) => issues.push({ path, message });

  function node(v: unknown, path: (string | number)[], depth: number) {
    if (depth > LIMITS.maxDepth)
      return add(
        path,
        `rules may nest at most ${LIMITS.maxDepth} levels deep; flatten nested all/any groups`,
      );
    if (!isObject(v))
      return add(
        path,
        'a rule must be an object: {"all": [...]}, {"any": [...]}, {"not": {...}} or {"performed": "<event type>", ...}',
      );
    const kinds = ['all', 'any', 'not', 'performed'].filter((k) => k in v);
    if (kinds.length !== 1) {
      const extra = Object.keys(v).slice(0, 5).map(quote).join(', ');
      return add(
        path,
        kinds.length === 0
          ? `a rule needs one of "all", "any", "not" or "performed"; found keys ${extra || 'none'}`
          : `a rule has exactly one of "all", "any", "not", "performed"; this one has ${kinds.map(quote).join(' and ')}`,
      );
    }
    const kind = kinds[0];
    if (kind === 'performed') return performed(v, path);
    const unknown = Object.keys(v).filter((k) => k !== kind);
    if (unknown.length)
      add([...path, unknown[0]], `${unknownKeysMessage(unknown, [kind])} next to "${kind}"`);
    if (kind === 'not') return node(v.not, [...path, 'not'], depth + 1);
    const list = v[kind];
    if (!Array.isArray(list)) return add([...path, kind], `"${kind}" takes a list of rules`);
    if (list.length === 0)
      return add([...path, kind], `"${kind}" needs at least one rule; an empty group has no meaning`);
    if (list.length > LIMITS.maxChildren)
      return add([...path, kind], `"${kind}" takes at most ${LIMITS.maxChildren} rules`);
    for (const [i, c] of list.entries()) node(c, [...path, kind, i], depth + 1);
  }

  function performed(v: Record<string, unknown>, path: (string | number)[]) {
    leaves++;
    if (leaves === LIMITS.maxLeaves + 1)
      add(path, `a rule may have at most ${LIMITS.maxLeaves} "performed" clauses`);
    const t = v.performed;
    if (typeof t !== 'string' || !(EVENT_TYPES as string[]).includes(t)) {
      add(
        [...path, 'performed'],
        `unknown event type ${typeof t === 'string' ? quote(t) : String(t)}; valid types: ${EVENT_TYPES.join(', ')}`,
      );
    }
    for (const k of Object.keys(v)) {
      if (!PERFORMED_KEYS.includes(k)) {
        add(
          [...path, k],
          `${unknownKeysMessage([k], PERFORMED_KEYS)}; a performed clause takes "performed", "where", "count" and "within_seconds"`,
        );
      }
    }
    if (v.where !== undefined) where(v.where, [...path, 'where']);
    if (v.count !== undefined) count(v.count, [...path, 'count']);
    if (v.within_seconds !== undefined) {
      const w = v.within_seconds;
      if (typeof w !== 'number' || !Number.isInteger(w))
        add([...path, 'within_seconds'], 'within_seconds must be a whole number of seconds');
      else if (w < 1)
        add(
          [...path, 'within_seconds'],
          'within_seconds must be at least 1; leave it out to count all history',
        );
      else if (w > LIMITS.maxWithinSeconds)
        add(
          [...path, 'within_seconds'],
          `within_seconds must be at most ${LIMITS.maxWithinSeconds} (5 years); is it in milliseconds by mistake?`,
        );
    }
  }

  function where(v: unknown, path: (string | number)[]) {
    if (!isObject(v))
      return add(
        path,
        'where must be an object of field → condition, e.g. {"channel": "whatsapp", "props.value": {"gte": 10}}',
      );
    for (const [field, cond] of Object.entries(v)) {
      const p = [...path, field];
      const isChannel = field === 'channel';
      if (!isChannel && !(field.startsWith('props.') && PROP_NAME.test(field.slice(6)))) {
        add(
          p,
          `unknown field ${quote(field)}; fields are "channel" and "props.<name>" (letters, digits, _ or -)`,
        );
        continue;
      }
      if (isObject(cond)) {
        const keys = Object.keys(cond);
        if (keys.length === 1 && keys[0] === 'in') inList(cond.in, [...p, 'in'], isChannel);
        else if (keys.length > 0 && keys.every((k) => (OPS as readonly string[]).includes(k)))
          range(cond, p, isChannel);
        else
          add(
            p,
            `a condition is a value, {"in": [values]} or number bounds {"gte"|"gt"|"lte"|"lt": n}; found keys ${keys.map(quote).join(', ') || 'none'}`,
          );
      } else scalar(cond, p, isChannel);
    }
  }

  function scalar(v: unknown, path: (string | number)[], isChannel: boolean) {
    if (isChannel) {
      if (typeof v !== 'string' || !(CHANNELS as readonly string[]).includes(v))
        add(path, `unknown channel ${quote(String(v))}; channels: ${CHANNELS.join(', ')}`);
      return;
    }
    if (typeof v === 'string') {
      if (v.length > LIMITS.maxStringLength)
        add(path, `strings are at most ${LIMITS.maxStringLength} characters`);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) add(path, 'numbers must be finite');
    } else if (typeof v !== 'boolean') add(path, 'a value must be a string, a number or true/false');
  }

  function inList(v: unknown, path: (string | number)[], isChannel: boolean) {
    if (!Array.isArray(v) || v.length === 0) return add(path, '"in" takes a non-empty list of values');
    if (v.length > LIMITS.maxInValues) return add(path, `"in" takes at most ${LIMITS.maxInValues} values`);
    for (const [i, x] of v.entries()) scalar(x, [...path, i], isChannel);
  }

  function range(v: Record<string, unknown>, path: (string | number)[], isChannel: boolean) {
    if (isChannel)
      return add(path, 'channel is compared with a channel name or {"in": [...]}, not number bounds');
    for (const [k, n] of Object.entries(v)) {
      if (typeof n !== 'number' || !Number.isFinite(n)) add([...path, k], `"${k}" takes a finite number`);
    }
    const lo = Math.max(num(v.gte), num(v.gt));
    const hi = Math.min(num(v.lte, Infinity), num(v.lt, Infinity));
    if (lo > hi)
      add(path, `the bounds cannot all hold: the lower bound ${lo} is above the upper bound ${hi}`);
  }

  function count(v: unknown, path: (string | number)[]) {
    if (!isObject(v)) return add(path, 'count must be an object like {"gte": 3} or {"gte": 1, "lte": 5}');
    const keys = Object.keys(v);
    if (keys.length === 0)
      return add(path, 'count needs "gte", "lte" or both; leave it out to mean at least once');
    for (const k of keys) {
      if (k !== 'gte' && k !== 'lte')
        add([...path, k], `unknown key ${quote(k)}; count takes "gte" and "lte"`);
      else {
        const n = v[k];
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
          add([...path, k], `"${k}" must be a whole number, 0 or more`);
        else if (n > LIMITS.maxCount) add([...path, k], `"${k}" must be at most ${LIMITS.maxCount}`);
      }
    }
    if (typeof v.gte === 'number' && typeof v.lte === 'number' && v.lte < v.gte) {
      add([...path, 'lte'], `lte (${v.lte}) is below gte (${v.gte}): no user could match`);
    }
  }

  node(input, [], 1);
  return issues;
}

const num = (v: unknown, fallback = -Infinity) => (typeof v === 'number' ? v : fallback);

export const formatIssues = (issues: RuleIssue[], prefix = 'rule') =>
  issues
    .slice(0, 10)
    .map((i) => `${[prefix, ...i.path].join('.')}: ${i.message}`)
    .join('; ');

/** Validates and normalises; throws a RuleError listing the problems when the rule is invalid. */
export function compileRule(input: unknown): CompiledRule {
  const issues = validateRule(input);
  if (issues.length) throw new RuleError(issues);
  const leaves: Leaf[] = [];
  const walk = (r: Rule): Node => {
    if ('all' in r) return { kind: 'all', children: r.all.map(walk) };
    if ('any' in r) return { kind: 'any', children: r.any.map(walk) };
    if ('not' in r) return { kind: 'not', child: walk(r.not) };
    const leaf: Leaf = {
      kind: 'leaf',
      index: leaves.length,
      type: r.performed,
      where: Object.entries(r.where ?? {}).map(([field, c]) => clause(field, c)),
      count: r.count
        ? { gte: r.count.gte ?? 0, ...(r.count.lte === undefined ? {} : { lte: r.count.lte }) }
        : { gte: 1 },
      ...(r.within_seconds === undefined ? {} : { withinMs: r.within_seconds * 1000 }),
    };
    leaves.push(leaf);
    return leaf;
  };
  return { root: walk(input as Rule), leaves };
}

function clause(field: string, c: WhereValue): Clause {
  const prop = field === 'channel' ? undefined : field.slice(6);
  if (typeof c !== 'object') return { field, prop, kind: 'eq', values: [c] };
  if ('in' in c) return { field, prop, kind: 'eq', values: c.in };
  return { field, prop, kind: 'range', range: c };
}

export class RuleError extends Error {
  constructor(readonly issues: RuleIssue[]) {
    super(formatIssues(issues));
    this.name = 'RuleError';
  }
}

/** True when a stored or event value satisfies a clause (arrays match when any element does). */
export function matchesClause(c: Clause, value: unknown): boolean {
  if (Array.isArray(value)) return value.some((x) => !Array.isArray(x) && matchesClause(c, x));
  if (c.kind === 'eq') return c.values.some((s) => typeof value === typeof s && value === s);
  if (typeof value !== 'number') return false;
  const r = c.range;
  return (
    (r.gte === undefined || value >= r.gte) &&
    (r.gt === undefined || value > r.gt) &&
    (r.lte === undefined || value <= r.lte) &&
    (r.lt === undefined || value < r.lt)
  );
}

/** Evaluates the boolean tree given each leaf's verdict. */
export function evalTree(n: Node, leaf: (l: Leaf) => boolean): boolean {
  switch (n.kind) {
    case 'all':
      return n.children.every((c) => evalTree(c, leaf));
    case 'any':
      return n.children.some((c) => evalTree(c, leaf));
    case 'not':
      return !evalTree(n.child, leaf);
    default:
      return leaf(n);
  }
}

export const countHolds = (l: Leaf, n: number) =>
  n >= l.count.gte && (l.count.lte === undefined || n <= l.count.lte);
