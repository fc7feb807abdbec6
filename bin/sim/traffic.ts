import { CONVERSION_TYPES, type Channel, type EventType } from '../../core/events/schema.ts';
import { CURRENCIES, KINDS } from './catalog.ts';
import { type SimBusiness, type SimEvent, threadEvents } from './journey.ts';
import { counterUuid, createRng, stableHex } from './random.ts';

export type { SimBusiness, SimEvent } from './journey.ts';

// Realistic conversational traffic, pure and deterministic: the same options give the same
// events (ids included), so re-sending a run is idempotent and benchmarks are comparable.

export type TrafficOptions = {
  seed: string | number;
  businesses: number;
  users: number;
  /** The traffic covers (now - days, now]. */
  days: number;
  /** The end of the simulated period (ms since the epoch); no event is later. */
  now: number;
};

const DAY = 86_400_000;

/** Businesses of every kind in turn, with a popularity that varies (a few are busy, most are not). */
export function makeBusinesses(opts: Pick<TrafficOptions, 'seed' | 'businesses'>): SimBusiness[] {
  const rng = createRng(`${opts.seed}:businesses`);
  const perKind = new Map<string, number>();
  const list: SimBusiness[] = [];
  for (let i = 0; i < opts.businesses; i++) {
    const kind = KINDS[i % KINDS.length];
    const n = (perKind.get(kind.kind) ?? 0) + 1;
    perKind.set(kind.kind, n);
    list.push({ id: `biz_${kind.kind}_${n}`, kind, currency: rng.weighted(CURRENCIES), weight: 0 });
  }
  // Zipf-like popularity over a shuffled order, so no kind is always the busiest.
  const order = list.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  order.forEach((b, rank) => {
    list[b].weight = 1 / (rank + 1) ** 0.7;
  });
  return list;
}

/**
 * The simulated clock reads 14:00 at \`now\`: the last hours before \`now\` are daytime (recent
 * activity to see), and the clock moves with \`now\`, so a run re-stamped later holds the same
 * events, shifted.
 */
const NOW_HOUR = 14 * 60 * 60 * 1000;

export const userId = (seed: string | number, index: number) => `u_${stableHex(`${seed}:user:${index}`)}`;

/** One user's events over every business they talk to, in time order, none after `now`. */
export function userEvents(
  opts: TrafficOptions,
  businesses: readonly SimBusiness[],
  index: number,
): SimEvent[] {
  const rng = createRng(`${opts.seed}:user:${index}`);
  const user_id = userId(opts.seed, index);
  const weights = businesses.map((b) => [b, b.weight] as const);
  const home = rng.weighted(weights);
  const talksTo = [home];
  if (businesses.length > 1 && rng.chance(0.12)) {
    const other = rng.weighted(weights.filter(([b]) => b !== home));
    talksTo.push(other);
  }
  const from = opts.now - opts.days * DAY;
  const ids = stableHex(`${opts.seed}:events:${index}`, 20);
  const rows: { at: number; n: number; event: SimEvent }[] = [];
  let n = 0;
  for (const business of talksTo) {
    const channel = rng.weighted(business.kind.channels) as Channel;
    // A whole offset from `from`: the same seed gives the same offsets whatever `now` is.
    const start = from + Math.round(rng.next() * (opts.now - from));
    const label = stableHex(`${opts.seed}:thread:${index}:${business.id}`, 12);
    for (const e of threadEvents({ rng, business, channel, start, label, midnight: opts.now - NOW_HOUR })) {
      const k = n++; // counted before the cut, so ids do not depend on `now`
      if (e.at > opts.now) continue;
      const event: SimEvent = {
        event_id: counterUuid(ids, k),
        type: e.type,
        occurred_at: new Date(e.at).toISOString(),
        business_id: business.id,
        user_id,
        channel,
        props: e.props,
      };
      rows.push({ at: e.at, n: k, event });
    }
  }
  rows.sort((a, b) => a.at - b.at || a.n - b.n);
  return rows.map((r) => r.event);
}

/** Every user's events, user after user; each user's in time order. */
export function* generateTraffic(opts: TrafficOptions): Generator<SimEvent> {
  const businesses = makeBusinesses(opts);
  for (let i = 0; i < opts.users; i++) yield* userEvents(opts, businesses, i);
}

export type Tally = {
  events: number;
  byType: Partial<Record<EventType, number>>;
  users: number;
  businesses: number;
  conversions: { count: number; byType: Partial<Record<EventType, number>>; value: Record<string, number> };
};

/** Counts what a stream of events holds: by type, distinct users and businesses, conversions and their value by currency. */
export function createTally() {
  const users = new Set<string>();
  const businesses = new Set<string>();
  const byType: Partial<Record<EventType, number>> = {};
  const conv = {
    count: 0,
    byType: {} as Partial<Record<EventType, number>>,
    value: {} as Record<string, number>,
  };
  let events = 0;
  const conversionTypes = new Set<string>(CONVERSION_TYPES);
  return {
    add(e: SimEvent) {
      events++;
      users.add(e.user_id);
      businesses.add(e.business_id);
      byType[e.type] = (byType[e.type] ?? 0) + 1;
      if (conversionTypes.has(e.type)) {
        conv.count++;
        conv.byType[e.type] = (conv.byType[e.type] ?? 0) + 1;
        const value = typeof e.props.value === 'number' ? e.props.value : 0;
        if (value > 0) {
          const currency = typeof e.props.currency === 'string' ? e.props.currency : '';
          conv.value[currency] = Math.round(((conv.value[currency] ?? 0) + value) * 100) / 100;
        }
      }
    },
    result(): Tally {
      return {
        events,
        byType: { ...byType },
        users: users.size,
        businesses: businesses.size,
        conversions: structuredClone(conv),
      };
    },
  };
}
