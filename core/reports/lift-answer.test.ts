import { describe, expect, it } from 'vitest';
import { LIFT_COLUMNS, campaignLift, liftTable } from './lift-answer.ts';
import type { LiftRow, UserValues } from './lift-query.ts';

const eur = (v: number): UserValues => [['EUR'], [v]];
const row = (over: Partial<LiftRow> = {}): LiftRow => ({
  campaign_id: 'c1',
  name: 'Spring cut',
  business_id: 'b1',
  c_users: '1000',
  c_converted: '100',
  c_conversions: '110',
  c_values: Array(100).fill(eur(40)),
  t_users: '9000',
  t_converted: '1260',
  t_conversions: '1400',
  t_values: Array(1260).fill(eur(40)),
  served: '8000',
  cost_micros: '2000000000',
  last_touch_conversions: 700,
  ...over,
});

describe('campaignLift', () => {
  it('turns group counts into lift, incremental conversions, cost and return', () => {
    const l = campaignLift(row());
    expect(l.control.conversion_rate).toBe(0.1);
    expect(l.treatment.conversion_rate).toBe(0.14);
    expect(l.absolute_lift!.estimate).toBeCloseTo(0.04, 12);
    expect(l.relative_lift!.estimate).toBeCloseTo(0.4, 12);
    expect(l.incremental_conversions!.estimate).toBeCloseTo(360, 9);
    expect(l.incremental_conversions!.low).toBeCloseTo(l.absolute_lift!.low * 9000, 9);
    expect(l.cost_per_incremental_conversion_micros).toBeCloseTo(2e9 / 360, 6);
    const [v] = l.value;
    expect(v.currency).toBe('EUR');
    expect(v.incremental_value!.estimate).toBeCloseTo(0.04 * 40 * 9000, 6);
    expect(v.incremental_roas!.estimate).toBeCloseTo((0.04 * 40 * 9000) / 2000, 9);
    expect(l.verdict).toBe('lift');
    expect(l.probability_positive).toBeGreaterThan(0.99);
    expect(l.summary).toMatch(
      /^The campaign caused about 360 extra converting users \(95% interval \d+ to \d+\)/,
    );
    expect(l.summary).toMatch(/credited the campaign with 700 conversions/);
  });

  it('says when the groups are too small, with the lift it could detect', () => {
    const l = campaignLift(
      row({ c_users: 60, c_converted: 6, c_values: [], t_users: 540, t_converted: 60, t_values: [] }),
    );
    expect(l.verdict).toBe('too_small');
    // 2.8016 · √(0.1 · 0.9 · (1/540 + 1/60)) = 0.1144.
    expect(l.minimum_detectable_effect.absolute).toBeCloseTo(0.1144, 4);
    expect(l.minimum_detectable_effect.relative).toBeCloseTo(1.144, 3);
    expect(l.summary).toMatch(/^Too few users to conclude: .* at least 11\.4 points \(\+114% relative\)/);
    expect(l.value).toEqual([]);
  });

  it('is inconclusive when the interval contains 0, and negative when it is below', () => {
    const same = campaignLift(row({ t_converted: 900, t_values: [] }));
    expect(same.verdict).toBe('inconclusive');
    expect(same.summary).toMatch(/^No significant difference/);
    expect(same.cost_per_incremental_conversion_micros).toBeNull();
    const worse = campaignLift(row({ t_converted: 500, t_values: [] }));
    expect(worse.verdict).toBe('negative');
    expect(worse.probability_positive).toBeLessThan(0.001);
  });

  it('keeps currencies apart and handles empty groups', () => {
    const l = campaignLift(
      row({
        t_values: [
          eur(40),
          [
            ['USD', 'EUR'],
            [10, 5],
          ],
        ],
      }),
    );
    expect(l.value.map((v) => v.currency)).toEqual(['EUR', 'USD']);
    expect(l.value[1].control_per_user).toBe(0);
    expect(l.value[1].treatment_per_user).toBeCloseTo(10 / 9000, 12);
    const empty = campaignLift(row({ c_users: 0, c_converted: 0, c_values: [] }));
    expect(empty.absolute_lift).toBeNull();
    expect(empty.relative_lift).toBeNull();
    expect(empty.probability_positive).toBeNull();
    expect(empty.verdict).toBe('too_small');
  });
});

describe('liftTable', () => {
  it('writes exactly the documented columns, one row per currency', () => {
    const l = campaignLift(row({ t_values: [eur(40), [['USD'], [10]]] }));
    const table = liftTable({ campaigns: [l, campaignLift(row({ c_values: [], t_values: [] }))] });
    expect(table).toHaveLength(3);
    for (const r of table) expect(Object.keys(r)).toEqual(LIFT_COLUMNS.map((c) => c.name));
    expect(table.map((r) => r.currency)).toEqual(['EUR', 'USD', '']);
    expect(table[2].incremental_value).toBeNull();
  });
});
