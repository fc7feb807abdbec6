import { generateTraffic } from '../bin/sim/traffic.ts';
import { normalizeEvent } from '../core/events/normalize.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';

// The benchmarks' traffic: realistic events from the simulator (50 businesses, a user for every
// four events, seven days up to `now`), each with an id of the caller's choosing so that a run's
// events are all first copies.

export type SimEvent = ReturnType<typeof generateTraffic> extends Iterable<infer T> ? T : never;

/** n simulated events as a client sends them; event i gets the id `idOf(i)`. */
export function simEvents(
  n: number,
  seed: string,
  idOf: (i: number) => string,
  now = Date.now(),
): SimEvent[] {
  const events: SimEvent[] = [];
  if (n <= 0) return events;
  for (const e of generateTraffic({ seed, businesses: 50, users: Math.ceil(n / 4), days: 7, now })) {
    events.push({ ...e, event_id: idOf(events.length) });
    if (events.length === n) break;
  }
  return events;
}

/** The same events as ingest stores them (normalised); an event ingest would refuse throws. */
export function canonicalEvents(n: number, seed: string, idOf: (i: number) => string, now = Date.now()) {
  return simEvents(n, seed, idOf, now).map((e): CanonicalEvent => {
    const r = normalizeEvent(e, { now, maxFutureMs: 300_000, keywords: [] });
    if (!r.ok) throw new Error(r.error);
    return r.value;
  });
}
