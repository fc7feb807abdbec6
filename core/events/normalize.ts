import type { z } from 'zod';
import { hashEmail, hashPhone, matchKeywords } from './privacy.ts';
import {
  CHANNELS,
  type CanonicalEvent,
  EVENT_TYPES,
  type EventType,
  type InputEvent,
  MAX_ID_LENGTH,
  PROP_NAME,
  inputEventSchema,
  occurredAtSchema,
  propsFastChecks,
  propsSchemas,
} from './schema.ts';

export type NormalizeContext = {
  now: number;
  maxFutureMs: number;
  /** Lower-cased keywords to look for in message text. */
  keywords: readonly string[];
};

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

const EARLIEST = Date.UTC(2000, 0, 1);
/** What toISOString writes; a valid time in exactly this form is its own canonical form. */
const CANONICAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TYPES = new Set<string>(EVENT_TYPES);
const CHANNEL_SET = new Set<string>(CHANNELS);
const BASE_KEYS = new Set([
  'event_id',
  'type',
  'occurred_at',
  'business_id',
  'user_id',
  'thread_id',
  'channel',
  'props',
]);
const isId = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= MAX_ID_LENGTH;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const digits = (s: string, from: number, n: number) => {
  let v = 0;
  for (let i = from; i < from + n; i++) v = v * 10 + s.charCodeAt(i) - 48;
  return v;
};
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * A time written as toISOString writes it that names a real instant: what occurredAtSchema
 * accepts of that form (a Gregorian date, 00:00:00 to 23:59:59), without running its regex.
 */
function isCanonicalTime(s: string): boolean {
  if (!CANONICAL_TIME.test(s)) return false;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS[month - 1];
  return (
    days !== undefined &&
    day >= 1 &&
    day <= days &&
    digits(s, 11, 2) < 24 &&
    digits(s, 14, 2) < 60 &&
    digits(s, 17, 2) < 60
  );
}

/**
 * The hot path: true only for an event the zod schemas accept as it is. Anything else goes
 * through zod, which also words the error. (Checked against zod by a property test.)
 */
function fastValid(e: Record<string, unknown>): e is InputEvent & { type: EventType } {
  for (const k in e) if (!BASE_KEYS.has(k)) return false;
  return (
    isId(e.event_id) &&
    typeof e.type === 'string' &&
    TYPES.has(e.type) &&
    isId(e.business_id) &&
    isId(e.user_id) &&
    (e.thread_id === undefined || isId(e.thread_id)) &&
    typeof e.channel === 'string' &&
    CHANNEL_SET.has(e.channel) &&
    typeof e.occurred_at === 'string' &&
    (isCanonicalTime(e.occurred_at) || occurredAtSchema.safeParse(e.occurred_at).success) &&
    (e.props === undefined || isRecord(e.props)) &&
    propsFastChecks[e.type as EventType](e.props ?? {})
  );
}

function describe(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((i) => {
      const path = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join('; ');
}

/** Validates one input event and returns its canonical, privacy-safe form. Never throws for bad data. */
export function normalizeEvent(
  input: unknown,
  ctx: NormalizeContext,
  opts: { fast?: boolean } = {},
): Result<CanonicalEvent> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, error: 'an event must be a JSON object' };
  }
  if (opts.fast !== false && fastValid(input as Record<string, unknown>)) {
    return finish(input as InputEvent & { type: EventType }, (input as InputEvent).props ?? {}, ctx);
  }
  const base = inputEventSchema.safeParse(input);
  if (!base.success) return { ok: false, error: describe(base.error) };
  const e = base.data;
  if (!TYPES.has(e.type)) {
    return {
      ok: false,
      error: `type: unknown event type "${e.type.slice(0, 64)}"; expected one of ${EVENT_TYPES.join(', ')}`,
    };
  }
  const type = e.type as EventType;
  // The props' schemas would drop a "__proto__" key without a word: it is refused like any other
  // name a rule cannot query (the fast path's check of prop names sees it).
  const raw = (input as { props?: unknown }).props;
  if (typeof raw === 'object' && raw !== null && Object.hasOwn(raw, '__proto__'))
    return { ok: false, error: propNameError('__proto__') };
  const props = propsSchemas[type].safeParse(e.props ?? {});
  if (!props.success) return { ok: false, error: describe(props.error, 'props') };
  return finish({ ...e, type }, props.data, ctx);
}

function finish(
  e: InputEvent & { type: EventType },
  props: Record<string, unknown>,
  ctx: NormalizeContext,
): Result<CanonicalEvent> {
  const ms = Date.parse(e.occurred_at);
  if (!Number.isFinite(ms)) return { ok: false, error: 'occurred_at: not a valid time' };
  if (ms > ctx.now + ctx.maxFutureMs) {
    return {
      ok: false,
      error: `occurred_at: ${e.occurred_at} is more than ${ctx.maxFutureMs / 1000}s in the future`,
    };
  }
  if (ms < EARLIEST) return { ok: false, error: 'occurred_at: before 2000-01-01 is not accepted' };

  const value: CanonicalEvent = {
    event_id: e.event_id,
    type: e.type,
    // Already in canonical form (UTC, milliseconds) most of the time: then kept as it is.
    occurred_at: CANONICAL_TIME.test(e.occurred_at) ? e.occurred_at : new Date(ms).toISOString(),
    business_id: e.business_id,
    user_id: e.user_id,
    thread_id: e.thread_id ?? `t_${e.business_id}_${e.user_id}`,
    channel: e.channel,
    props: reduceProps(props, ctx.keywords),
  };
  const problem = unstorable(value, e.thread_id === undefined);
  return problem ? { ok: false, error: problem } : { ok: true, value };
}

const ID_FIELDS = ['event_id', 'business_id', 'user_id', 'thread_id'] as const;
const LONE_SURROGATE = 'contains invalid Unicode (a lone UTF-16 surrogate)';

/**
 * Why the store or a later stage would refuse this event (undefined: it is storable). Checked on
 * the reduced event, so raw text that is never stored does not matter, and derived ids do.
 */
function unstorable(e: CanonicalEvent, derivedThread: boolean): string | undefined {
  for (const f of ID_FIELDS) {
    const v = e[f];
    if (!v.isWellFormed()) return `${f}: ${LONE_SURROGATE}`;
    if (v.trim() === '') return `${f}: must not be only whitespace`;
  }
  if (derivedThread && e.thread_id.length > MAX_ID_LENGTH)
    return `thread_id: the default thread_id "t_<business_id>_<user_id>" would be ${e.thread_id.length} characters (at most ${MAX_ID_LENGTH}); send a shorter user_id or a thread_id`;
  for (const k in e.props) {
    if (!PROP_NAME.test(k)) return propNameError(k);
    const v = e.props[k];
    const bad = Array.isArray(v)
      ? v.some((x) => typeof x === 'string' && !x.isWellFormed())
      : typeof v === 'string' && !v.isWellFormed();
    if (bad) return `props.${k}: ${LONE_SURROGATE}`;
  }
  return undefined;
}

function propNameError(name: string): string {
  const shown = JSON.stringify(name.slice(0, 64)); // a lone surrogate shows escaped
  return `props: the prop name ${shown} cannot be queried; use 1 to 64 letters, digits, _ or -`;
}

/** The length of s in code points, as `[...s].length` counts it (a lone surrogate counts one). */
function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** Raw text becomes its length and matched keywords; raw email/phone become SHA-256 hashes. */
function reduceProps(p: Record<string, unknown>, keywords: readonly string[]): Record<string, unknown> {
  if (p.text === undefined && p.email === undefined && p.phone === undefined) return p; // nothing private
  const { text, email, phone, ...rest } = p as Record<string, unknown> & {
    text?: string;
    email?: string;
    phone?: string;
  };
  if (typeof text === 'string') {
    if (rest.text_length === undefined) rest.text_length = codePoints(text);
    const found = matchKeywords(text, keywords);
    if (found.length > 0 || rest.keywords !== undefined) {
      const given = Array.isArray(rest.keywords)
        ? rest.keywords.map((k) => (typeof k === 'string' ? k.toLowerCase() : k))
        : [];
      rest.keywords = [...new Set([...given, ...found])];
    }
  }
  if (typeof email === 'string' && email.trim() !== '' && rest.email_sha256 === undefined) {
    rest.email_sha256 = hashEmail(email);
  }
  if (typeof phone === 'string' && phone.replace(/\D/g, '') !== '' && rest.phone_sha256 === undefined) {
    rest.phone_sha256 = hashPhone(phone);
  }
  return rest;
}
