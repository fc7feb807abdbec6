import { CONVERSION_TYPES } from '../events/schema.ts';
import type { FunnelRequest, FunnelStep } from './funnel.ts';
import { type Model, splitConversion, touchpointsFor } from './models.ts';
import { matchWhere } from './where.ts';
import { entry } from '../maps.ts';

export { MODELS, type Model } from './models.ts';

// The reports' meanings computed the slow, obvious way over events in memory (docs/reports.md).
// It is the oracle the SQL statements and the attribution processor are tested against.

export type RefEvent = {
  event_id: string;
  type: string;
  /** Milliseconds since the epoch. */
  t: number;
  business_id: string;
  user_id: string;
  channel: string;
  props: Record<string, unknown>;
};

/** One event per event_id: the first copy (in the order given, i.e. accepted) wins. */
export function distinct(events: RefEvent[]): RefEvent[] {
  const first = new Map<string, RefEvent>();
  for (const e of events) if (!first.has(e.event_id)) first.set(e.event_id, e);
  return [...first.values()];
}

export function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Per user: level reached and, per step k ≥ 2, the gap in ms on the path the docs define. */
type UserFunnel = { level: number; gaps: (number | null)[] };

export function referenceFunnel(all: RefEvent[], r: FunnelRequest, businesses?: string[]) {
  const scoped = distinct(all).filter(
    (e) =>
      e.t >= r.from &&
      e.t < r.to &&
      (r.business_id === undefined || e.business_id === r.business_id) &&
      (!businesses || businesses.includes(e.business_id)),
  );
  const groups = new Map<string, Map<string, RefEvent[]>>();
  for (const e of scoped) {
    const g = r.breakdown ? String(e[r.breakdown]) : '';
    entry(
      entry(groups, g, () => new Map()),
      e.user_id,
      () => [],
    ).push(e);
  }
  const answer = (users: Map<string, RefEvent[]>): FunnelStep[] => {
    const per = [...users.values()].map((evs) =>
      r.mode === 'unordered' ? unorderedUser(evs, r) : orderedUser(evs, r),
    );
    return r.steps.map((s, k) => {
      const reached = per.filter((u) => u.level > k);
      const m = k === 0 ? null : median(reached.flatMap((u) => u.gaps[k] ?? []));
      return {
        type: s.type,
        users: reached.length,
        median_seconds_from_previous: m === null ? null : m / 1000,
      };
    });
  };
  if (!r.breakdown) return { steps: answer(groups.get('') ?? new Map()) };
  const out = [...groups.entries()]
    .map(([value, users]) => ({ value, steps: answer(users) }))
    .filter((g) => g.steps[0].users > 0);
  return { groups: out.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0)) };
}

function orderedUser(evs: RefEvent[], r: FunnelRequest): UserFunnel {
  const W = r.window_seconds * 1000;
  const stepEvents = r.steps.map((s) =>
    evs.filter((e) => e.type === s.type && matchWhere(s.where, e)).map((e) => e.t),
  );
  const stepTimes = [...new Set(stepEvents.flat())];
  const exTimes = r.exclusions.map((x) =>
    evs.filter((e) => e.type === x.type && matchWhere(x.where, e)).map((e) => e.t),
  );
  // A path t1 < … < tk is valid when no excluded event lies strictly between t_i and t_min(j,k),
  // and (strict) no step-matching event lies strictly between two consecutive path times.
  const valid = (p: number[]) => {
    const k = p.length;
    if (r.mode === 'strict' && k > 1 && stepTimes.some((t) => t > p[k - 2] && t < p[k - 1])) return false;
    return r.exclusions.every((x, e) => {
      const [i, j] = x.between;
      if (i >= k) return true;
      const lo = p[i - 1];
      const hi = p[Math.min(j, k) - 1];
      return !exTimes[e].some((t) => t > lo && t < hi);
    });
  };
  const best: (number[] | undefined)[] = r.steps.map(() => undefined);
  const better = (p: number[], q: number[] | undefined) => {
    if (!q) return true;
    const k = p.length;
    if (p[0] !== q[0]) return p[0] > q[0];
    if (p[k - 1] !== q[k - 1]) return p[k - 1] < q[k - 1];
    return k > 1 && p[k - 2] < q[k - 2];
  };
  const walk = (p: number[]) => {
    const k = p.length;
    if (!valid(p)) return;
    if (better(p, best[k - 1])) best[k - 1] = [...p];
    if (k === r.steps.length) return;
    for (const t of new Set(stepEvents[k])) if (t > p[k - 1] && t - p[0] <= W) walk([...p, t]);
  };
  for (const t1 of new Set(stepEvents[0])) walk([t1]);
  const level = best.filter(Boolean).length;
  return { level, gaps: best.map((p) => (p && p.length > 1 ? p[p.length - 1] - p[p.length - 2] : null)) };
}

function unorderedUser(evs: RefEvent[], r: FunnelRequest): UserFunnel {
  const W = r.window_seconds * 1000;
  const stepEvents = r.steps.map((s) =>
    evs.filter((e) => e.type === s.type && matchWhere(s.where, e)).map((e) => e.t),
  );
  const times = [...new Set(stepEvents.flat())].sort((a, b) => a - b);
  const reachedAt: (number | null)[] = r.steps.map(() => null);
  for (const t of times) {
    for (let k = 1; k <= r.steps.length; k++) {
      const covered = stepEvents.slice(0, k).every((ts) => ts.some((x) => x <= t && x >= t - W));
      if (covered && reachedAt[k - 1] === null) reachedAt[k - 1] = t;
    }
  }
  const level = reachedAt.filter((x) => x !== null).length;
  const gap = (t: number | null, k: number) => {
    const prev = k === 0 ? null : reachedAt[k - 1];
    return t === null || prev === null ? null : t - prev;
  };
  return { level, gaps: reachedAt.map(gap) };
}

export type AttributionParams = {
  model: Model;
  from: number;
  to: number;
  conversion_types?: string[];
  click_window_seconds: number;
  view_window_seconds: number;
  half_life_seconds: number;
  business_id?: string;
};

export type Credit = {
  conversion_id: string;
  campaign_id: string;
  currency: string;
  weight: number;
  value: number;
};

/** As the SQL reads it: spaces trimmed, upper-cased, XXX when absent. */
export function currencyOf(props: Record<string, unknown>): string {
  const c = typeof props.currency === 'string' ? props.currency.replace(/^ +| +$/g, '') : '';
  return c === '' ? 'XXX' : c.toUpperCase();
}

/** Credits per conversion; a conversion without touchpoints gets one credit with campaign ''. */
export function referenceCredits(all: RefEvent[], a: AttributionParams, businesses?: string[]): Credit[] {
  const events = distinct(all).filter((e) => !businesses || businesses.includes(e.business_id));
  const types = a.conversion_types ?? CONVERSION_TYPES;
  const touches = events.filter((e) => e.type === 'sponsored.clicked' || e.type === 'sponsored.served');
  const credits: Credit[] = [];
  for (const c of events) {
    if (!types.includes(c.type) || c.t < a.from || c.t >= a.to) continue;
    if (a.business_id !== undefined && c.business_id !== a.business_id) continue;
    const value = typeof c.props.value === 'number' ? c.props.value : 0;
    const currency = currencyOf(c.props);
    const mine = touches
      .filter((e) => e.user_id === c.user_id && e.business_id === c.business_id)
      .map((e) => ({
        event_id: e.event_id,
        t: e.t,
        campaign_id: String(e.props.campaign_id ?? ''),
        click: e.type === 'sponsored.clicked',
      }));
    const { chosen } = touchpointsFor(c.t, mine, a);
    for (const [campaign_id, weight] of splitConversion(a.model, c.t, chosen, a.half_life_seconds)) {
      credits.push({ conversion_id: c.event_id, campaign_id, currency, weight, value: weight * value });
    }
  }
  return credits;
}

type Totals = { conversions: number; value_by_currency: Record<string, number> };
export type AttributionAnswer = {
  model: Model;
  rows: ({ campaign_id: string; campaign_name: string | null } & Totals)[];
  unattributed: Totals;
};

/** Sums credits into the report's answer: campaigns with a positive share, value per currency. */
export function summarizeCredits(model: Model, credits: Credit[]): AttributionAnswer {
  const rows = new Map<string, AttributionAnswer['rows'][number]>();
  const unattributed: Totals = { conversions: 0, value_by_currency: {} };
  for (const c of credits) {
    if (c.campaign_id !== '' && !(c.weight > 0)) continue;
    const r =
      c.campaign_id === ''
        ? unattributed
        : entry(rows, c.campaign_id, () => ({
            campaign_id: c.campaign_id,
            campaign_name: null,
            conversions: 0,
            value_by_currency: {},
          }));
    r.conversions += c.weight;
    r.value_by_currency[c.currency] = (r.value_by_currency[c.currency] ?? 0) + c.value;
  }
  return {
    model,
    rows: [...rows.values()].sort((a, b) => (a.campaign_id < b.campaign_id ? -1 : 1)),
    unattributed,
  };
}

export const referenceAttribution = (events: RefEvent[], a: AttributionParams, businesses?: string[]) =>
  summarizeCredits(a.model, referenceCredits(events, a, businesses));
