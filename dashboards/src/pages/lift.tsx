import { post } from '../api.ts';
import { useData } from '../data.ts';
import { endOf, startOf } from '../dates.ts';
import { fileName } from '../export.ts';
import { DataTable, ErrorText, Exports, Loading, num, pct } from '../ui.tsx';

// A campaign's lift (POST /v1/reports/lift, docs/reports.md "Lift"): what held-out users tell
// about what the campaign caused, beside what last-touch attribution credited it with.

type Interval = { estimate: number; low: number; high: number };
type Group = { users: number; converted_users: number; conversions: number; conversion_rate: number | null };
export type CampaignLift = {
  campaign_id: string;
  name: string | null;
  control: Group;
  treatment: Group;
  absolute_lift: Interval | null;
  relative_lift: Interval | null;
  probability_positive: number | null;
  incremental_conversions: Interval | null;
  served: number;
  cost_micros: number;
  cost_per_incremental_conversion_micros: number | null;
  last_touch_conversions: number;
  verdict: string;
  summary: string;
};

type GroupRow = { group: string } & Group;
type MeasureRow = { measure: string; estimate: number | null; low: number | null; high: number | null };

const VERDICTS: Record<string, string> = {
  lift: 'Lift: the campaign caused extra conversions',
  negative: 'Negative: treated users converted less',
  inconclusive: 'Inconclusive: no significant difference',
  too_small: 'Too small to conclude',
};

/** The measures as rows: each with its estimate and, where it has one, its 95 % interval. */
export function liftMeasures(l: CampaignLift): MeasureRow[] {
  const iv = (measure: string, i: Interval | null): MeasureRow => ({
    measure,
    estimate: i?.estimate ?? null,
    low: i?.low ?? null,
    high: i?.high ?? null,
  });
  const one = (measure: string, v: number | null): MeasureRow => ({
    measure,
    estimate: v,
    low: null,
    high: null,
  });
  return [
    iv('absolute lift (rate points)', l.absolute_lift),
    iv('relative lift', l.relative_lift),
    one('probability lift > 0', l.probability_positive),
    iv('incremental conversions', l.incremental_conversions),
    one(
      'cost per incremental conversion',
      l.cost_per_incremental_conversion_micros === null
        ? null
        : l.cost_per_incremental_conversion_micros / 1e6,
    ),
    one('cost', l.cost_micros / 1e6),
    one('last-touch conversions', l.last_touch_conversions),
  ];
}

const SHARES = new Set(['absolute lift (rate points)', 'relative lift', 'probability lift > 0']);

export function Lift(props: { campaignId: string; from: string; to: string; business?: string }) {
  const request = { campaign_id: props.campaignId, from: startOf(props.from), to: endOf(props.to) };
  const key = JSON.stringify(request);
  const {
    data,
    error,
    loading,
    key: shown,
  } = useData(key, () => post<{ campaigns: CampaignLift[] }>('/v1/reports/lift', request));
  const l = data?.campaigns.find((c) => c.campaign_id === props.campaignId);
  const groups: GroupRow[] = l
    ? [
        { group: 'treatment', ...l.treatment },
        { group: 'control (held out)', ...l.control },
      ]
    : [];
  const measures = l ? liftMeasures(l) : [];
  const groupColumns = [
    { key: 'group' as const, label: 'Group' },
    { key: 'users' as const, label: 'Users', kind: 'number' as const },
    { key: 'converted_users' as const, label: 'Converted users', kind: 'number' as const },
    { key: 'conversions' as const, label: 'Conversions', kind: 'number' as const },
    { key: 'conversion_rate' as const, label: 'Conversion rate', kind: 'number' as const },
  ];
  const measureColumns = [
    { key: 'measure' as const, label: 'Measure' },
    { key: 'estimate' as const, label: 'Estimate', kind: 'number' as const },
    { key: 'low' as const, label: '95% low', kind: 'number' as const },
    { key: 'high' as const, label: '95% high', kind: 'number' as const },
  ];
  const show = (r: MeasureRow, v: number | null) => (SHARES.has(r.measure) ? pct(v) : num(v, 2));
  const name = (part: string) =>
    fileName(`lift-${part}`, props.business, props.campaignId, props.from, props.to);
  return (
    <section class="lift" aria-labelledby="lift-title" data-testid="lift" data-request={shown}>
      <h2 id="lift-title">Lift of {l?.name ?? props.campaignId}</h2>
      <Loading loading={loading} />
      <ErrorText error={error} />
      {data && !l && (
        <p class="muted">
          No user of this campaign had a first would-be offer in these dates (a campaign needs a holdout to be
          measured).
        </p>
      )}
      {l && (
        <>
          <p data-testid="lift-verdict">
            <strong>{VERDICTS[l.verdict] ?? l.verdict}</strong>
          </p>
          <p data-testid="lift-summary">{l.summary}</p>
          <DataTable
            testId="lift-groups"
            caption="Users and conversions per group (treatment: could be served; control: held out)"
            rows={groups}
            columns={groupColumns.map((c) =>
              c.key === 'conversion_rate' ? { ...c, render: (r: GroupRow) => pct(r.conversion_rate) } : c,
            )}
          />
          <Exports name={name('groups')} columns={groupColumns} rows={groups} label="groups" />
          <DataTable
            testId="lift-measures"
            caption="Lift with 95% intervals, beside what last-touch attribution credited (money in the campaign's currency units)"
            rows={measures}
            columns={measureColumns.map((c) =>
              c.key === 'measure' ? c : { ...c, render: (r: MeasureRow) => show(r, r[c.key]) },
            )}
          />
          <Exports name={name('measures')} columns={measureColumns} rows={measures} label="measures" />
        </>
      )}
    </section>
  );
}
