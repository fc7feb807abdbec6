import { holdoutGroup } from '../../core/campaigns/holdout.ts';
import type { SimEvent } from './journey.ts';
import { createRng } from './random.ts';
import { SimulateError, sendEvents } from './sender.ts';

// A lift scenario with a known true effect: campaigns with a holdout, users split into treatment
// and control by the same keyed hash the engine uses, and conversions whose chance rises by a set
// amount after a delivered offer. It writes what the engine and the ad server would record under
// the lift contract (docs/reports.md, "Lift"): a sponsored.withheld marker at each user's first
// would-be offer (group control or treatment), sponsored.served when a treatment offer is
// delivered, clicks, and the users' own conversions — so the lift report can be checked against
// the truth, and last-touch attribution against it.

export type LiftCampaignPlan = {
  id: string;
  business_id: string;
  /** Share of users held out (the campaign's `holdout`). */
  holdout: number;
  users: number;
  /** Chance to convert within the window after the first would-be offer, without the campaign. */
  baseRate: number;
  /** How much that chance rises after a delivered offer (absolute; 0: the campaign does nothing). */
  uplift: number;
  /** Share of treatment offers that are delivered (become impressions). */
  deliveryRate: number;
  /** Share of impressions clicked. */
  clickRate: number;
  priceMicros: number;
  currency: string;
};

export type LiftScenarioOptions = {
  seed: string;
  /** First would-be offers fall in [from, to) (ms since the epoch). */
  from: number;
  to: number;
  /** The conversion window the report will use. */
  windowMs: number;
  campaigns: LiftCampaignPlan[];
  holdoutKey?: string;
};

/** The true (intent-to-treat) conversion rates and lift of one campaign. */
export type LiftTruth = {
  campaign_id: string;
  control_rate: number;
  treatment_rate: number;
  absolute: number;
  relative: number;
  /** What the scenario wrote, to check the report's counts against: users, and impressions in [from, to). */
  users: { control: number; treatment: number };
  served: number;
  cost_micros: number;
};

const SEC = 1000;
const HOUR = 3600 * SEC;

/** Users who converted before their offer, or only after the window: they must not count. */
const OUTSIDE_RATE = 0.05;

export function liftScenario(opts: LiftScenarioOptions): { events: SimEvent[]; truth: LiftTruth[] } {
  const events: SimEvent[] = [];
  const truth: LiftTruth[] = [];
  for (const c of opts.campaigns) {
    const rng = createRng(`${opts.seed}:lift:${c.id}`);
    const t: LiftTruth = {
      campaign_id: c.id,
      control_rate: c.baseRate,
      treatment_rate: c.baseRate + c.deliveryRate * c.uplift,
      absolute: c.deliveryRate * c.uplift,
      relative: (c.deliveryRate * c.uplift) / c.baseRate,
      users: { control: 0, treatment: 0 },
      served: 0,
      cost_micros: 0,
    };
    let n = 0;
    for (let i = 0; i < c.users; i++) {
      const user_id = `u_${c.id}_${i}`;
      const emit = (type: SimEvent['type'], at: number, props: Record<string, unknown>) =>
        events.push({
          event_id: `lift-${opts.seed}-${c.id}-${n++}`,
          type,
          occurred_at: new Date(Math.round(at)).toISOString(),
          business_id: c.business_id,
          user_id,
          channel: 'whatsapp',
          props,
        });
      const group = holdoutGroup(c, user_id, opts.holdoutKey);
      const control = group === 'control';
      t.users[control ? 'control' : 'treatment']++;
      const t0 = opts.from + rng.next() * (opts.to - opts.from);
      const decision_id = `d_${c.id}_${i}`;
      const offer = { decision_id, campaign_id: c.id, price_micros: c.priceMicros };
      emit('sponsored.withheld', t0, { ...offer, group });
      let delivered = false;
      let tServed = t0;
      if (!control && rng.chance(c.deliveryRate)) {
        delivered = true;
        tServed = t0 + rng.between(SEC, 60 * SEC);
        emit('sponsored.served', tServed, offer);
        if (tServed < opts.to) {
          t.served++;
          t.cost_micros += c.priceMicros;
        }
        if (rng.chance(c.clickRate))
          emit('sponsored.clicked', tServed + rng.between(10 * SEC, HOUR), {
            decision_id,
            campaign_id: c.id,
          });
      }
      const order = (at: number, k: number) =>
        emit('order.placed', at, {
          order_id: `o_${c.id}_${i}_${k}`,
          value: Math.round(rng.between(20, 80) * 100) / 100,
          currency: c.currency,
        });
      if (rng.chance(OUTSIDE_RATE)) order(t0 - rng.between(HOUR, 3 * 24 * HOUR), 0);
      if (rng.chance(OUTSIDE_RATE)) order(t0 + opts.windowMs + rng.between(HOUR, 3 * 24 * HOUR), 1);
      if (rng.chance(c.baseRate + (delivered ? c.uplift : 0))) {
        // After the delivery for those who got it (the rise is caused by it), anywhere in the window.
        const start = tServed - t0 + SEC;
        const at = t0 + rng.between(start, opts.windowMs);
        order(at, 2);
        if (rng.chance(0.1)) order(at + rng.between(HOUR, 24 * HOUR), 3);
      }
    }
    truth.push(t);
  }
  return { events, truth };
}

export type LiftRunOptions = {
  url: string;
  key: string;
  seed: string;
  /** Users per campaign. */
  users: number;
  campaigns: number;
  concurrency?: number;
  now?: number;
};

export type LiftRunRow = {
  campaign_id: string;
  truth: LiftTruth;
  /** What POST /v1/reports/lift answered for it. */
  report: {
    relative_lift: { estimate: number; low: number; high: number } | null;
    verdict: string;
    last_touch_conversions: number;
    control: { users: number };
    treatment: { users: number };
  };
};

/** True effects from none to 5 points: the first campaign does nothing. */
export const liftUplifts = (n: number) =>
  Array.from({ length: n }, (_, i) => (n === 1 ? 0 : (0.05 * i) / (n - 1)));

/**
 * `parley simulate --lift`: sends a lift scenario to a running Parley, then asks the lift report
 * until it has counted every user, and returns the report next to the truth.
 */
export async function runLift(opts: LiftRunOptions): Promise<{ business_id: string; rows: LiftRunRow[] }> {
  const window = 7 * 24 * HOUR;
  // Every conversion (up to a window and 3 days after the offer) must be in the past.
  const to = Math.floor(((opts.now ?? Date.now()) - window - 4 * 24 * HOUR) / HOUR) * HOUR;
  const from = to - 14 * 24 * HOUR;
  const business_id = `biz_sim_lift_${opts.seed}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
  const campaigns = liftUplifts(opts.campaigns).map((uplift, i) => ({
    id: `cmp_sim_lift_${opts.seed}_${i + 1}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128),
    business_id,
    holdout: 0.5,
    users: opts.users,
    baseRate: 0.1,
    uplift,
    deliveryRate: 0.9,
    clickRate: 0.05,
    priceMicros: 20_000,
    currency: 'EUR',
  }));
  const sim = liftScenario({ seed: opts.seed, from, to, windowMs: window, campaigns });
  const sent = await sendEvents(sim.events, { url: opts.url, key: opts.key, concurrency: opts.concurrency });
  if (sent.rejected > 0)
    throw new SimulateError(`Parley rejected ${sent.rejected} events, e.g. ${sent.samples[0]?.error}`);
  const body = { business_id, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${opts.url}/v1/reports/lift`, {
      method: 'POST',
      headers: { authorization: `Bearer ${opts.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 200)
      throw new SimulateError(`the lift report answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const answer = (await res.json()) as { campaigns: (LiftRunRow['report'] & { campaign_id: string })[] };
    const got = new Map(answer.campaigns.map((c) => [c.campaign_id, c]));
    const rows = sim.truth.flatMap((t) => {
      const report = got.get(t.campaign_id);
      const counted =
        report && report.control.users === t.users.control && report.treatment.users === t.users.treatment;
      return counted ? [{ campaign_id: t.campaign_id, truth: t, report }] : [];
    });
    if (rows.length === sim.truth.length) return { business_id, rows };
    if (Date.now() > deadline)
      throw new SimulateError('the lift report did not count every simulated user within 60 s');
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function formatLiftSummary(r: { business_id: string; rows: LiftRunRow[] }): string {
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  const rows = [
    ['campaign', 'true lift', 'measured', '95% interval', 'verdict', 'last touch'],
    ...r.rows.map(({ campaign_id, truth, report }) => {
      const rel = report.relative_lift;
      return [
        campaign_id,
        pct(truth.relative),
        rel ? pct(rel.estimate) : '—',
        rel ? `${pct(rel.low)} to ${pct(rel.high)}` : '—',
        report.verdict,
        report.last_touch_conversions.toFixed(0),
      ];
    }),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((x) => x[i].length)));
  const line = (x: string[]) =>
    x.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [
    `Lift: relative lift of each campaign of ${r.business_id}, truth against the report`,
    '',
    ...rows.map(line),
  ].join('\n');
}
