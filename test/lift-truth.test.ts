import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiftCampaignPlan, type LiftTruth, liftScenario } from '../bin/sim/lift.ts';
import { normalizeEvent } from '../core/events/normalize.ts';
import { type CampaignLift, liftAnswer } from '../core/reports/lift-answer.ts';
import { type LiftRow, buildLiftQuery, liftRequestSchema } from '../core/reports/lift-query.ts';
import type { Store } from '../core/store/client.ts';
import { toRow } from '../processors/sink.ts';
import { openTestStore, queryRows } from './reports-helpers.ts';

// The lift report against known truth: many seeded simulator runs (one campaign each), some with
// a real effect and some with none, stored in the real embedded engine through the sink's row
// format, then one report over all of them.

const RUNS = 100;
const DAY = 86_400_000;
const FROM = Date.parse('2026-03-01T00:00:00Z');
const TO = FROM + 14 * DAY;
const WINDOW = 7 * DAY;

const plan = (id: string, uplift: number): LiftCampaignPlan => ({
  id,
  business_id: 'biz_lift',
  holdout: 0.5,
  users: 1000,
  baseRate: 0.1,
  uplift,
  deliveryRate: 0.9,
  clickRate: 0.05,
  priceMicros: 20_000,
  currency: 'EUR',
});

let store: Store;
let close: () => Promise<void>;
let truth: Map<string, LiftTruth>;
let report: Map<string, CampaignLift>;

beforeAll(async () => {
  ({ store, close } = await openTestStore());
  const campaigns = Array.from({ length: RUNS }, (_, i) => [
    plan(`eff${i}`, 0.05),
    plan(`zero${i}`, 0),
  ]).flat();
  const sim = liftScenario({ seed: 'truth', from: FROM, to: TO, windowMs: WINDOW, campaigns });
  truth = new Map(sim.truth.map((t) => [t.campaign_id, t]));
  const ctx = { now: TO + 30 * DAY, maxFutureMs: 0, keywords: [] };
  const rows = sim.events.map((e) => {
    const r = normalizeEvent(e, ctx); // what ingest would accept and store
    if (!r.ok) throw new Error(`${e.event_id}: ${r.error}`);
    return toRow(r.value);
  });
  for (let i = 0; i < rows.length; i += 100_000)
    await store.client.insert({
      table: `${store.database}.events`,
      values: rows.slice(i, i + 100_000),
      format: 'JSONEachRow',
    });
  const request = liftRequestSchema.parse({
    business_id: 'biz_lift',
    from: new Date(FROM).toISOString(),
    to: new Date(TO).toISOString(),
    window_seconds: WINDOW / 1000,
  });
  const answer = liftAnswer(await queryRows<LiftRow>(store, buildLiftQuery(store.database, request)));
  report = new Map(answer.campaigns.map((c) => [c.campaign_id, c]));
}, 120_000);
afterAll(async () => close?.());

const runs = (prefix: string) => [...report.values()].filter((c) => c.campaign_id.startsWith(prefix));
const share = (xs: boolean[]) => xs.filter(Boolean).length / xs.length;

describe('lift against known truth', () => {
  it('counts exactly the users, impressions and spend the simulation wrote', () => {
    expect(report.size).toBe(2 * RUNS);
    for (const c of report.values()) {
      const t = truth.get(c.campaign_id)!;
      expect([c.control.users, c.treatment.users, c.served, c.cost_micros]).toEqual([
        t.users.control,
        t.users.treatment,
        t.served,
        t.cost_micros,
      ]);
    }
  });

  it('counts only conversions after the first offer and within the window: rates are centred on the truth', () => {
    // Each user also has a 5% chance of an order before the offer and 5% after the window; counting
    // either would move the mean control rate (true 10%) far beyond three standard errors.
    const rates = [...report.values()].map((c) => c.control.conversion_rate!);
    const mean = rates.reduce((s, x) => s + x, 0) / rates.length;
    const se = Math.sqrt((0.1 * 0.9) / 500 / rates.length);
    expect(Math.abs(mean - 0.1)).toBeLessThan(3 * se);
  });

  it('the 95% interval of the relative lift covers the true effect in at least 90% of runs', () => {
    const eff = runs('eff');
    expect(eff).toHaveLength(RUNS);
    const covered = eff.map((c) => {
      const t = truth.get(c.campaign_id)!.relative;
      return c.relative_lift !== null && c.relative_lift.low <= t && t <= c.relative_lift.high;
    });
    expect(share(covered)).toBeGreaterThanOrEqual(0.9);
    // And the estimates are centred on the truth (45%): their mean is within 3 standard errors.
    const est = eff.map((c) => c.relative_lift!.estimate);
    const mean = est.reduce((s, x) => s + x, 0) / est.length;
    const sd = Math.sqrt(est.reduce((s, x) => s + (x - mean) ** 2, 0) / (est.length - 1));
    expect(Math.abs(mean - truth.get('eff0')!.relative)).toBeLessThan((3 * sd) / Math.sqrt(est.length));
    // The absolute interval covers too, and most runs see the effect.
    expect(
      share(
        eff.map(
          (c) =>
            c.absolute_lift!.low <= truth.get(c.campaign_id)!.absolute &&
            truth.get(c.campaign_id)!.absolute <= c.absolute_lift!.high,
        ),
      ),
    ).toBeGreaterThanOrEqual(0.9);
    expect(share(eff.map((c) => c.verdict === 'lift'))).toBeGreaterThan(0.5);
  });

  it('finds no significant lift for a zero-effect campaign in at least 90% of runs, while last touch credits it', () => {
    const zero = runs('zero');
    expect(zero).toHaveLength(RUNS);
    expect(share(zero.map((c) => c.verdict !== 'lift'))).toBeGreaterThanOrEqual(0.9);
    expect(share(zero.map((c) => c.last_touch_conversions > 0))).toBeGreaterThanOrEqual(0.9);
    const credited = zero.reduce((s, c) => s + c.last_touch_conversions, 0);
    expect(credited).toBeGreaterThan(RUNS * 5);
    // Value: no incremental value either, most of the time.
    const eur = zero.map((c) => c.value.find((v) => v.currency === 'EUR')!.incremental_value!);
    expect(share(eur.map((v) => v.low <= 0 && 0 <= v.high))).toBeGreaterThanOrEqual(0.9);
  });

  it('value: the bootstrap interval of incremental value covers the true value in at least 90% of runs', () => {
    // True extra value per treatment user: absolute lift × mean order value (50) × (1 + 10% repeat orders).
    const perUser = truth.get('eff0')!.absolute * 50 * 1.1;
    const eff = runs('eff').map((c) => c.value.find((v) => v.currency === 'EUR')!.difference_per_user!);
    expect(share(eff.map((d) => d.low <= perUser && perUser <= d.high))).toBeGreaterThanOrEqual(0.9);
  });
});
