import { inHoldout } from '../../core/campaigns/holdout.ts';
import type { SimEvent } from './journey.ts';
import { createRng } from './random.ts';

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
      const control = inHoldout(c.id, user_id, c.holdout, opts.holdoutKey);
      t.users[control ? 'control' : 'treatment']++;
      const t0 = opts.from + rng.next() * (opts.to - opts.from);
      const decision_id = `d_${c.id}_${i}`;
      const offer = { decision_id, campaign_id: c.id, price_micros: c.priceMicros };
      emit('sponsored.withheld', t0, { ...offer, group: control ? 'control' : 'treatment' });
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
