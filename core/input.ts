import { z } from 'zod';

// Strict inputs (docs/ingest.md, "Strict inputs"): an unknown key is a mistake to report, with the
// key meant when one is close; times say what to send rather than the pattern they failed.

/**
 * Edit distance (insertions, deletions, substitutions and swaps of neighbours, the commonest
 * typo), for suggesting the key meant.
 */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/** The closest known key, when it is close enough to be a typo (a third of its length, at least 1). */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD < best.length && bestD <= Math.max(1, Math.floor(best.length / 3))
    ? best
    : undefined;
}

const show = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);

/** `unknown key "busines_id"; did you mean "business_id"?` (each unknown key, the first few). */
export function unknownKeysMessage(keys: readonly string[], known: readonly string[]): string {
  return keys
    .slice(0, 3)
    .map((k) => {
      const meant = didYouMean(k, known);
      return `unknown key ${show(k)}${meant ? `; did you mean ${show(meant)}?` : ''}`;
    })
    .join('; ');
}

/** The keys an object schema declares (for the suggestion), or none when it is not one. */
function knownKeys(inst: unknown): string[] {
  const shape = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } })?._zod?.def?.shape;
  return shape ? Object.keys(shape) : [];
}

// Every strict object schema words its unknown keys this way.
z.config({
  customError: (iss) =>
    iss.code === 'unrecognized_keys' ? unknownKeysMessage(iss.keys, knownKeys(iss.inst)) : undefined,
});

/** Re-exported so a module that declares strict schemas also installs the wording above. */
export const strictObject = z.strictObject;

/**
 * Text that must show something: trimmed, then not empty. The pattern always holds once that is
 * checked; it is there so the OpenAPI document says a visible character is needed.
 */
export function nonBlank(max: number, error: string, opts: { lowerCase?: boolean } = {}) {
  const trimmed = z.string().trim();
  return (opts.lowerCase ? trimmed.toLowerCase() : trimmed)
    .min(1, { error, abort: true })
    .max(max)
    .regex(/\S/, error);
}

export const TIME_HINT = 'expected ISO-8601 with a zone, e.g. 2026-11-20T00:00:00Z';
const PLAIN_DATE = z.regexes.date;
const WITH_ZONE = z.regexes.datetime({ offset: true });

/**
 * A time in a report or listing range, as epoch milliseconds: ISO-8601 with a zone, or a plain
 * date (`2026-11-20`) meaning that day's UTC midnight. The OpenAPI document shows both forms with
 * the patterns checked here (zod's own: real calendar dates, hours to 23:59:59); the error names
 * an example rather than the patterns.
 */
const rangeText = z
  .string({ error: TIME_HINT })
  .refine(
    (s) => (PLAIN_DATE.test(s) || WITH_ZONE.test(s)) && Number.isFinite(Date.parse(s)),
    `${TIME_HINT}, or a date such as 2026-11-20 (UTC midnight)`,
  )
  .meta({
    description: 'ISO-8601 time with a zone, or a date (UTC midnight)',
    anyOf: [
      { format: 'date', pattern: PLAIN_DATE.source },
      { format: 'date-time', pattern: WITH_ZONE.source },
    ],
  });
const epochMs = (s: string) => Date.parse(PLAIN_DATE.test(s) ? `${s}T00:00:00Z` : s);
export const rangeTime = rangeText.transform(epochMs);

export const RANGE_FROM =
  'Start of the range, included: ISO-8601 time with a zone, or a date (UTC midnight); before to';
/**
 * The bounds of a report's range [from, to): from must be before to. The examples sit before the
 * transform, where the document reads them, and are in order.
 */
export const rangeFrom = rangeText
  .meta({
    description: RANGE_FROM,
    examples: ['2026-11-01', '2026-11-01T00:00:00Z'],
  })
  .transform(epochMs);
export const rangeTo = rangeText
  .meta({
    description:
      'End of the range, excluded: ISO-8601 time with a zone, or a date (UTC midnight); after from',
    examples: ['2026-12-01', '2026-12-01T00:00:00+01:00'],
  })
  .transform(epochMs);

/**
 * A page cursor: the `next` of a previous page, opaque base64url text this API wrote. Only values
 * the API returned are accepted (others: 400 "not a cursor this API returned").
 */
export const pageCursor = z
  .string()
  .max(512)
  .regex(/^[A-Za-z0-9_-]+$/, 'not a cursor this API returned')
  .describe(
    'The `next` of a previous page: opaque base64url text; only a value this API returned is accepted',
  );

/** A point in time with a zone (no plain dates: a moment, not a range bound). */
export const instant = z.iso.datetime({ offset: true, error: TIME_HINT });

declare global {
  // ES2024 (Node 20+); the project's TypeScript target predates it.
  interface String {
    isWellFormed(): boolean;
  }
}
