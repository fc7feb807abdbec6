import {
  type Interval,
  type ValueSample,
  bootstrapMeanDifference,
  minimumDetectableEffect,
  newcombeDifference,
  probabilityGreater,
  relativeLift,
  seedOf,
} from './lift.ts';
import type { LiftRow, UserValues } from './lift-query.ts';

// The lift report's answer from the statement's rows (docs/reports.md, "Lift"): the statistics
// per campaign, a verdict and a sentence a marketer can read, and the same as a flat table.

/** Below this many users in a group, or this many converted users in both, no verdict is given. */
export const MIN_GROUP_USERS = 100;
export const MIN_CONVERTED_USERS = 10;
const MAX_BOOTSTRAP_DRAWS = 20_000_000;

export type GroupFigures = {
  users: number;
  converted_users: number;
  conversions: number;
  conversion_rate: number | null;
};
export type ValueFigures = {
  currency: string;
  control_per_user: number;
  treatment_per_user: number;
  difference_per_user: Interval | null;
  incremental_value: Interval | null;
  incremental_roas: Interval | null;
};
export const VERDICTS = ['lift', 'negative', 'inconclusive', 'too_small'] as const;
export type CampaignLift = {
  campaign_id: string;
  name: string | null;
  business_id: string;
  control: GroupFigures;
  treatment: GroupFigures;
  absolute_lift: Interval | null;
  relative_lift: Interval | null;
  probability_positive: number | null;
  incremental_conversions: Interval | null;
  value: ValueFigures[];
  served: number;
  cost_micros: number;
  cost_per_incremental_conversion_micros: number | null;
  last_touch_conversions: number;
  minimum_detectable_effect: { absolute: number | null; relative: number | null };
  verdict: (typeof VERDICTS)[number];
  summary: string;
};

const group = (users: number, converted: number, conversions: number): GroupFigures => ({
  users,
  converted_users: converted,
  conversions,
  conversion_rate: users > 0 ? converted / users : null,
});

const scale = (i: Interval | null, k: number): Interval | null =>
  i && { estimate: i.estimate * k, low: i.low * k, high: i.high * k };

/** Per currency, the non-zero values of one group's users. */
function byCurrency(users: UserValues[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [currencies, values] of users)
    currencies.forEach((c, i) => {
      if (values[i] === 0) return;
      const list = out.get(c) ?? [];
      list.push(Number(values[i]));
      out.set(c, list);
    });
  return out;
}

function valueFigures(row: LiftRow, nc: number, nt: number, costMicros: number): ValueFigures[] {
  const c = byCurrency(row.c_values);
  const t = byCurrency(row.t_values);
  const currencies = [...new Set([...c.keys(), ...t.keys()])].sort();
  return currencies.map((currency) => {
    const control: ValueSample = { users: nc, values: c.get(currency) ?? [] };
    const treatment: ValueSample = { users: nt, values: t.get(currency) ?? [] };
    const draws = control.values.length + treatment.values.length + 1;
    const resamples = Math.max(200, Math.min(2000, Math.floor(MAX_BOOTSTRAP_DRAWS / draws)));
    const diff = bootstrapMeanDifference(
      treatment,
      control,
      seedOf(`${row.campaign_id}\0${currency}`),
      resamples,
    );
    const incremental = scale(diff, nt);
    const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
    return {
      currency,
      control_per_user: nc > 0 ? sum(control.values) / nc : 0,
      treatment_per_user: nt > 0 ? sum(treatment.values) / nt : 0,
      difference_per_user: diff,
      incremental_value: incremental,
      incremental_roas: costMicros > 0 ? scale(incremental, 1e6 / costMicros) : null,
    };
  });
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const signedPct = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(0)}%`;
const num = (x: number) => (Math.abs(x) >= 10 ? x.toFixed(0) : x.toFixed(1));

function summarise(l: Omit<CampaignLift, 'summary'>): string {
  const rates = `${pct(l.treatment.conversion_rate ?? 0)} of ${l.treatment.users} treated users converted, against ${pct(l.control.conversion_rate ?? 0)} of ${l.control.users} held out`;
  const credit = `Last-touch attribution credited the campaign with ${num(l.last_touch_conversions)} conversions.`;
  const mde = l.minimum_detectable_effect;
  const detectable =
    mde.absolute === null
      ? 'Both groups need users before anything can be detected.'
      : `At these sizes only a lift of at least ${(mde.absolute * 100).toFixed(1)} points${mde.relative === null ? '' : ` (${signedPct(mde.relative)} relative)`} would be detected 80% of the time.`;
  const inc = l.incremental_conversions;
  const rel = l.relative_lift;
  const relText = rel
    ? ` (relative lift ${signedPct(rel.estimate)}, 95% interval ${signedPct(rel.low)} to ${signedPct(rel.high)})`
    : '';
  switch (l.verdict) {
    case 'too_small':
      return `Too few users to conclude: ${rates}. ${detectable} ${credit}`;
    case 'inconclusive':
      return `No significant difference: ${rates}${relText}. ${detectable} ${credit}`;
    case 'lift':
      return inc
        ? `The campaign caused about ${num(inc.estimate)} extra converting users (95% interval ${num(inc.low)} to ${num(inc.high)}): ${rates}${relText}. ${credit}`
        : `Treated users converted more than held-out ones: ${rates}${relText}. ${credit}`;
    case 'negative':
      return `Treated users converted less than held-out ones: ${rates}${relText}. ${credit}`;
  }
}

export function campaignLift(row: LiftRow): CampaignLift {
  const n = (v: number | string | null | undefined) => Number(v ?? 0);
  const [nc, xc, nt, xt] = [n(row.c_users), n(row.c_converted), n(row.t_users), n(row.t_converted)];
  const costMicros = n(row.cost_micros);
  const both = nc > 0 && nt > 0;
  const absolute = both ? newcombeDifference(xt, nt, xc, nc) : null;
  const incremental = scale(absolute, nt);
  const pControl = nc > 0 ? xc / nc : 0;
  const mdeAbs = minimumDetectableEffect(both && xc === 0 ? (xt + xc) / (nt + nc) : pControl, nt, nc);
  const tooSmall = nc < MIN_GROUP_USERS || nt < MIN_GROUP_USERS || xc + xt < MIN_CONVERTED_USERS;
  // Without users in both groups there is no difference to judge, and tooSmall holds anyway.
  const verdict =
    tooSmall || !absolute
      ? 'too_small'
      : absolute.low > 0
        ? 'lift'
        : absolute.high < 0
          ? 'negative'
          : 'inconclusive';
  const lift: Omit<CampaignLift, 'summary'> = {
    campaign_id: row.campaign_id,
    name: row.name || null,
    business_id: row.business_id,
    control: group(nc, xc, n(row.c_conversions)),
    treatment: group(nt, xt, n(row.t_conversions)),
    absolute_lift: absolute,
    relative_lift: relativeLift(xt, nt, xc, nc),
    probability_positive: both ? probabilityGreater(xt, nt, xc, nc) : null,
    incremental_conversions: incremental,
    value: valueFigures(row, nc, nt, costMicros),
    served: n(row.served),
    cost_micros: costMicros,
    cost_per_incremental_conversion_micros:
      incremental && incremental.estimate > 0 && costMicros > 0 ? costMicros / incremental.estimate : null,
    last_touch_conversions: n(row.last_touch_conversions),
    minimum_detectable_effect: {
      absolute: mdeAbs,
      relative: mdeAbs !== null && pControl > 0 ? mdeAbs / pControl : null,
    },
    verdict,
  };
  return { ...lift, summary: summarise(lift) };
}

export const liftAnswer = (rows: LiftRow[]) => ({ campaigns: rows.map(campaignLift) });

/** CSV and Arrow: one row per campaign and currency of value (currency '' when none converted with value). */
export function liftTable(answer: { campaigns: CampaignLift[] }): Record<string, string | number | null>[] {
  const iv = (prefix: string, i: Interval | null) => ({
    [prefix]: i?.estimate ?? null,
    [`${prefix}_low`]: i?.low ?? null,
    [`${prefix}_high`]: i?.high ?? null,
  });
  return answer.campaigns.flatMap((l) => {
    const base = {
      campaign_id: l.campaign_id,
      name: l.name,
      business_id: l.business_id,
      ...Object.fromEntries(
        (['control', 'treatment'] as const).flatMap((g) => [
          [`${g}_users`, l[g].users],
          [`${g}_converted_users`, l[g].converted_users],
          [`${g}_conversions`, l[g].conversions],
          [`${g}_conversion_rate`, l[g].conversion_rate],
        ]),
      ),
      ...iv('absolute_lift', l.absolute_lift),
      ...iv('relative_lift', l.relative_lift),
      probability_positive: l.probability_positive,
      ...iv('incremental_conversions', l.incremental_conversions),
      served: l.served,
      cost_micros: l.cost_micros,
      cost_per_incremental_conversion_micros: l.cost_per_incremental_conversion_micros,
      last_touch_conversions: l.last_touch_conversions,
      mde_absolute: l.minimum_detectable_effect.absolute,
      mde_relative: l.minimum_detectable_effect.relative,
      verdict: l.verdict,
    };
    const values = l.value.length ? l.value : [null];
    return values.map((v) => ({
      ...base,
      currency: v?.currency ?? '',
      control_value_per_user: v?.control_per_user ?? null,
      treatment_value_per_user: v?.treatment_per_user ?? null,
      ...iv('incremental_value', v?.incremental_value ?? null),
      ...iv('incremental_roas', v?.incremental_roas ?? null),
    }));
  });
}

const interval = (prefix: string) => [prefix, `${prefix}_low`, `${prefix}_high`];
const groupNames = (g: string) => [
  `${g}_users`,
  `${g}_converted_users`,
  `${g}_conversions`,
  `${g}_conversion_rate`,
];
const STRINGS = new Set(['campaign_id', 'name', 'business_id', 'verdict', 'currency']);
const COUNTS = /^(control|treatment)_(users|converted_users|conversions)$/;

/** The table's columns, in the order liftTable writes them, with their Arrow types. */
export const LIFT_COLUMNS = [
  'campaign_id',
  'name',
  'business_id',
  ...groupNames('control'),
  ...groupNames('treatment'),
  ...interval('absolute_lift'),
  ...interval('relative_lift'),
  'probability_positive',
  ...interval('incremental_conversions'),
  'served',
  'cost_micros',
  'cost_per_incremental_conversion_micros',
  'last_touch_conversions',
  'mde_absolute',
  'mde_relative',
  'verdict',
  'currency',
  'control_value_per_user',
  'treatment_value_per_user',
  ...interval('incremental_value'),
  ...interval('incremental_roas'),
].map((name) => ({
  name,
  type: STRINGS.has(name) ? ('string' as const) : COUNTS.test(name) ? ('count' as const) : ('float' as const),
}));
