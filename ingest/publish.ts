import { createHash } from 'node:crypto';
import type { EventFeed } from '../core/events/feed.ts';
import { ParleyError, isParleyError } from '../core/errors.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';

export type Rejection = { index: number; error: string };

const PRIVATE_KEYS = new Set(['text', 'email', 'phone', 'name', 'body', 'message', 'wa_id', 'from']);

/** What the dead-letter topic keeps of a rejected input: its shape, never personal data. */
export function scrub(input: unknown, depth = 0): unknown {
  if (typeof input === 'string') return input.length > 256 ? `${input.slice(0, 256)}…` : input;
  if (Array.isArray(input)) return depth > 4 ? '[…]' : input.slice(0, 64).map((v) => scrub(v, depth + 1));
  if (input && typeof input === 'object') {
    if (depth > 4) return '{…}';
    return Object.fromEntries(
      Object.entries(input)
        .slice(0, 64)
        .map(([k, v]) => [k, PRIVATE_KEYS.has(k.toLowerCase()) ? '[removed]' : scrub(v, depth + 1)]),
    );
  }
  return input;
}

export function rawLineSummary(line: string) {
  return { raw_length: line.length, raw_sha256: createHash('sha256').update(line).digest('hex') };
}

/**
 * Publishes accepted events (keyed by user_id) and dead letters together. Resolves once the bus
 * holds all of them durably; a bus failure becomes a retriable 503 and nothing is acknowledged.
 */
export async function publishEvents(
  feed: EventFeed,
  topics: { events: string; dlq: string },
  events: CanonicalEvent[],
  dead: { source: string; index: number; error: string; input: unknown }[],
): Promise<void> {
  try {
    await Promise.all([
      feed.publish(topics.events, events),
      dead.length > 0
        ? feed.bus.publish(
            topics.dlq,
            dead.map((d) => ({
              key: d.source,
              value: JSON.stringify({ ...d, rejected_at: new Date().toISOString() }),
            })),
          )
        : null,
    ]);
  } catch (err) {
    if (isParleyError(err) && err.code === 'PARLEY_ERR_BUS_UNAVAILABLE') throw err;
    throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err });
  }
}
