import { useState } from 'preact/hooks';
import { call, errorPaths, get, post } from '../api.ts';
import { useData } from '../data.ts';
import { CHANNELS, daysAgo, endOf, startOf, today, validDay } from '../dates.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { DateRange } from '../range.tsx';
import { Lift } from './lift.tsx';
import { DataTable, ErrorText, Exports, Field, Loading, currenciesOf, num, pct, value } from '../ui.tsx';
import { setParams, useLocation } from '../url.ts';

type Campaign = {
  id: string;
  business_id: string;
  name: string;
  status: 'active' | 'paused';
  creative: { text: string; buttons?: unknown[] };
  targeting: Record<string, unknown>;
  schedule: { start: string; end?: string };
  budget: { total_micros: number; daily_micros?: number };
  bid: { cpm_micros?: number; cpc_micros?: number };
  frequency_cap: { max: number; per_seconds: number };
  pacing: string;
};
type ByCurrency = Record<string, number>;
type Perf = {
  campaign_id: string;
  campaign_name: string | null;
  targeting_kind: string;
  served: number;
  clicks: number;
  click_rate: number | null;
  spend_micros: number;
  conversions: number;
  cost_per_conversion_micros: number | null;
  value_by_currency: ByCurrency;
  return_on_spend_by_currency: ByCurrency;
};
type ByTargeting = {
  targeting_kind: string;
  campaigns: number;
  served: number;
  clicks: number;
  click_rate: number | null;
  spend_micros: number;
  conversions: number;
  value_by_currency: ByCurrency;
};
/** One row per campaign; value and ROAS have a column per currency (`value_EUR`, `roas_EUR`). */
type Row = {
  campaign_id: string;
  name: string;
  status: string;
  targeting: string;
  impressions: number;
  clicks: number;
  ctr: number | null;
  spend: number;
  budget: number | null;
  pacing: number | null;
  conversions: number;
  cpa: number | null;
  campaign?: Campaign;
} & Record<`value_${string}` | `roas_${string}`, number | null>;

const M = 1e6;
/** Share of budget delivered ÷ share of the flight elapsed (1 = on pace). */
function pacing(c: Campaign | undefined, spendMicros: number, now = Date.now()) {
  if (!c?.schedule.end) return null;
  const start = Date.parse(c.schedule.start);
  const end = Date.parse(c.schedule.end);
  const elapsed = Math.min(1, Math.max(0, (now - start) / (end - start)));
  return elapsed > 0 ? spendMicros / c.budget.total_micros / elapsed : null;
}

const nonEmpty = (t: Record<string, unknown>, keys: string[]) =>
  keys.some((k) => Array.isArray(t[k]) && (t[k] as unknown[]).length > 0);
/** The report's targeting kind, for a campaign the report does not list. */
function targetingKind(c: Campaign | undefined) {
  if (!c) return '';
  const contextual = nonEmpty(c.targeting, ['keywords_any', 'keywords_none']);
  const segment = nonEmpty(c.targeting, ['segments_all', 'segments_any', 'segments_none']);
  return contextual && segment ? 'both' : contextual ? 'contextual' : segment ? 'segment' : 'none';
}

function input(c: Campaign) {
  const { id: _i, ...rest } = c as Campaign & Record<string, unknown>;
  for (const k of ['version', 'created_at', 'updated_at']) delete rest[k];
  return rest;
}

export function Campaigns(props: { ctx: Ctx }) {
  const { ctx } = props;
  const { q } = useLocation();
  const business = ctx.business;
  const edit = q.get('edit');
  const lift = q.get('lift');
  const sort = q.get('sort') ?? 'name';
  const dir = q.get('dir') === 'desc' ? 'desc' : 'asc';
  const from = validDay(q.get('from')) ?? daysAgo(29);
  const to = validDay(q.get('to')) ?? today();
  const bq = business ? `business_id=${encodeURIComponent(business)}` : '';
  const range = `from=${encodeURIComponent(startOf(from))}&to=${encodeURIComponent(endOf(to))}`;
  const data = useData(`campaigns|${bq}|${range}`, async () => {
    const [list, perf] = await Promise.all([
      ctx.can('marketer') ? get<{ campaigns: Campaign[] }>(`/v1/campaigns${bq ? `?${bq}` : ''}`) : null,
      ctx.can('analyst')
        ? get<{ campaigns: Perf[]; by_targeting: ByTargeting[] }>(
            `/v1/reports/campaigns?${range}${bq ? `&${bq}` : ''}`,
          )
        : null,
    ]);
    return {
      campaigns: list?.campaigns ?? [],
      perf: perf?.campaigns ?? [],
      byTargeting: perf?.by_targeting ?? [],
    };
  });
  const byId = new Map((data.data?.campaigns ?? []).map((c) => [c.id, c]));
  const ids = new Set([...byId.keys(), ...(data.data?.perf ?? []).map((p) => p.campaign_id)]);
  const perfById = new Map((data.data?.perf ?? []).map((p) => [p.campaign_id, p]));
  const currencies = currenciesOf((data.data?.perf ?? []).map((p) => p.value_by_currency));
  const rows: Row[] = [...ids].map((id) => {
    const c = byId.get(id);
    const p = perfById.get(id);
    const spend = p?.spend_micros ?? 0;
    const money: Record<string, number | null> = {};
    for (const cur of currencies) {
      money[`value_${cur}`] = p?.value_by_currency[cur] ?? 0;
      money[`roas_${cur}`] = p?.return_on_spend_by_currency[cur] ?? null;
    }
    return {
      campaign_id: id,
      name: c?.name ?? p?.campaign_name ?? id,
      status: c?.status ?? '',
      targeting: p?.targeting_kind ?? targetingKind(c),
      impressions: p?.served ?? 0,
      clicks: p?.clicks ?? 0,
      ctr: p?.click_rate ?? null,
      spend: spend / M,
      budget: c ? c.budget.total_micros / M : null,
      pacing: pacing(c, spend),
      conversions: p?.conversions ?? 0,
      cpa: p?.cost_per_conversion_micros == null ? null : p.cost_per_conversion_micros / M,
      campaign: c,
      ...money,
    } as Row;
  });
  rows.sort((a, b) => {
    const x = a[sort as keyof Row] ?? -Infinity;
    const y = b[sort as keyof Row] ?? -Infinity;
    const r = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return dir === 'asc' ? r : -r;
  });
  const total = (k: 'impressions' | 'clicks' | 'spend' | 'conversions' | `value_${string}`) =>
    rows.reduce((a, r) => a + (r[k] ?? 0), 0);
  const marketer = ctx.can('marketer');
  const setStatus = async (c: Campaign, status: 'active' | 'paused') => {
    await call('PUT', `/v1/campaigns/${encodeURIComponent(c.id)}`, { ...input(c), status });
    data.reload();
  };
  const columns = [
    { key: 'name' as const, label: 'Campaign' },
    { key: 'status' as const, label: 'Status' },
    { key: 'targeting' as const, label: 'Targeting' },
    { key: 'impressions' as const, label: 'Impressions', kind: 'number' as const },
    { key: 'clicks' as const, label: 'Clicks', kind: 'number' as const },
    { key: 'ctr' as const, label: 'CTR', kind: 'number' as const },
    { key: 'spend' as const, label: 'Spend', kind: 'number' as const },
    { key: 'budget' as const, label: 'Budget', kind: 'number' as const },
    { key: 'pacing' as const, label: 'Pacing', kind: 'number' as const },
    { key: 'conversions' as const, label: 'Conversions', kind: 'number' as const },
    { key: 'cpa' as const, label: 'CPA', kind: 'number' as const },
    ...currencies.flatMap((cur) => [
      { key: `value_${cur}` as const, label: `Value ${cur}`, kind: 'number' as const },
      { key: `roas_${cur}` as const, label: `ROAS ${cur}`, kind: 'number' as const },
    ]),
  ];
  const render: Partial<Record<string, (r: Row) => preact.ComponentChildren>> = {
    ctr: (r) => pct(r.ctr),
    spend: (r) => num(r.spend, 2),
    budget: (r) => num(r.budget, 2),
    pacing: (r) =>
      r.pacing === null
        ? '—'
        : `${num(r.pacing, 2)}× ${r.pacing > 1.2 ? '(ahead)' : r.pacing < 0.8 ? '(behind)' : '(on pace)'}`,
    cpa: (r) => num(r.cpa, 2),
    ...Object.fromEntries(
      currencies.flatMap((cur) => [
        [`value_${cur}`, (r: Row) => num(r[`value_${cur}`], 2)],
        [`roas_${cur}`, (r: Row) => num(r[`roas_${cur}`], 2)],
      ]),
    ),
    status: (r) =>
      r.campaign && marketer ? (
        <span class="row">
          {r.status}
          <button
            type="button"
            aria-label={`${r.status === 'active' ? 'Pause' : 'Resume'} ${r.name}`}
            onClick={() => r.campaign && setStatus(r.campaign, r.status === 'active' ? 'paused' : 'active')}
          >
            {r.status === 'active' ? 'Pause' : 'Resume'}
          </button>
          <button
            type="button"
            aria-label={`Edit ${r.name}`}
            onClick={() => setParams({ edit: r.campaign_id })}
          >
            Edit
          </button>
        </span>
      ) : (
        r.status
      ),
  };
  return (
    <section>
      {marketer && (
        <div class="row">
          <button type="button" onClick={() => setParams({ edit: 'new' })}>
            New campaign
          </button>
        </div>
      )}
      {ctx.can('analyst') ? (
        <DateRange from={from} to={to} />
      ) : (
        <p class="muted">Performance figures need the analyst role.</p>
      )}
      <Loading loading={data.loading} />
      <ErrorText error={data.error} />
      {data.data && (
        <DataTable
          testId="campaigns-table"
          caption="Campaigns: delivery, spend and conversions (spend in the campaign's currency units; value and ROAS per currency of the conversions, never summed across currencies)"
          rows={rows}
          sort={{
            key: sort,
            dir,
            onSort: (k) => setParams({ sort: k, dir: k === sort && dir === 'asc' ? 'desc' : 'asc' }),
          }}
          columns={[
            ...columns.map((c) => ({ ...c, render: render[c.key] })),
            ...(ctx.can('analyst')
              ? [
                  {
                    key: 'campaign_id' as const,
                    label: 'Lift',
                    render: (r: Row) => (
                      <button
                        type="button"
                        aria-label={`Lift of ${r.name}`}
                        onClick={() => setParams({ lift: r.campaign_id })}
                      >
                        Lift
                      </button>
                    ),
                  },
                ]
              : []),
          ]}
          foot={
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <td />
                <td />
                <td class="n">{num(total('impressions'))}</td>
                <td class="n">{num(total('clicks'))}</td>
                <td class="n">{pct(total('impressions') ? total('clicks') / total('impressions') : null)}</td>
                <td class="n">{num(total('spend'), 2)}</td>
                <td colSpan={2} />
                <td class="n">{num(total('conversions'))}</td>
                <td />
                {currencies.map((cur) => {
                  const v = total(`value_${cur}`);
                  const spend = total('spend');
                  return [
                    <td key={`v${cur}`} class="n">
                      {num(v, 2)}
                    </td>,
                    <td key={`r${cur}`} class="n">
                      {num(spend > 0 ? v / spend : null, 2)}
                    </td>,
                  ];
                })}
                {ctx.can('analyst') && <td />}
              </tr>
            </tfoot>
          }
        />
      )}
      <Exports name={fileName('campaigns', business, from, to)} columns={columns} rows={rows} />
      {data.data && data.data.byTargeting.length > 0 && (
        <ByTargetingTable
          rows={data.data.byTargeting}
          name={fileName('campaigns-by-targeting', business, from, to)}
        />
      )}
      {lift && ctx.can('analyst') && <Lift campaignId={lift} from={from} to={to} business={business} />}
      {marketer && edit && (
        <CampaignForm
          key={edit}
          campaign={byId.get(edit)}
          business={business}
          onSaved={() => data.reload()}
        />
      )}
      {marketer && <WhyNot business={business} campaigns={data.data?.campaigns ?? []} />}
    </section>
  );
}

function ByTargetingTable(props: { rows: ByTargeting[]; name: string }) {
  const currencies = currenciesOf(props.rows.map((r) => r.value_by_currency));
  const rows = props.rows.map((r) => ({
    targeting: r.targeting_kind,
    campaigns: r.campaigns,
    impressions: r.served,
    clicks: r.clicks,
    ctr: r.click_rate,
    spend: r.spend_micros / M,
    conversions: r.conversions,
    ...Object.fromEntries(currencies.map((cur) => [`value_${cur}`, r.value_by_currency[cur] ?? 0])),
  })) as ({ targeting: string } & Record<string, number | string | null>)[];
  const columns = [
    { key: 'targeting', label: 'Targeting' },
    { key: 'campaigns', label: 'Campaigns', kind: 'number' as const },
    { key: 'impressions', label: 'Impressions', kind: 'number' as const },
    { key: 'clicks', label: 'Clicks', kind: 'number' as const },
    { key: 'ctr', label: 'CTR', kind: 'number' as const },
    { key: 'spend', label: 'Spend', kind: 'number' as const },
    { key: 'conversions', label: 'Conversions', kind: 'number' as const },
    ...currencies.map((cur) => ({ key: `value_${cur}`, label: `Value ${cur}`, kind: 'number' as const })),
  ];
  const fmt = (k: string) => (r: Record<string, unknown>) =>
    k === 'ctr'
      ? pct(r.ctr as number | null)
      : num(r[k] as number, k === 'spend' || k.startsWith('value_') ? 2 : 0);
  return (
    <>
      <DataTable
        testId="campaigns-by-targeting"
        caption="Campaigns summed by targeting kind (value per currency)"
        rows={rows}
        columns={columns.map((c) => (c.key === 'targeting' ? c : { ...c, render: fmt(c.key) }))}
      />
      <Exports name={props.name} columns={columns} rows={rows} label="by targeting" />
    </>
  );
}

type FormState = Record<string, string> & { channels: string };

function initial(c: Campaign | undefined, business: string | undefined): FormState {
  const day = (iso?: string) => (iso ? iso.slice(0, 10) : '');
  return {
    business_id: c?.business_id ?? business ?? '',
    name: c?.name ?? '',
    status: c?.status ?? 'active',
    text: c?.creative.text ?? '',
    segments_all: ((c?.targeting.segments_all as string[]) ?? []).join(', '),
    channels: ((c?.targeting.channels as string[]) ?? []).join(','),
    start: day(c?.schedule.start) || new Date().toISOString().slice(0, 10),
    end: day(c?.schedule.end),
    budget: String(c ? c.budget.total_micros / M : 100),
    cpm: String(c?.bid.cpm_micros ? c.bid.cpm_micros / M : 5),
    cap_max: String(c?.frequency_cap.max ?? 1),
    cap_hours: String(c ? c.frequency_cap.per_seconds / 3600 : 24),
    pacing: c?.pacing ?? 'even',
  };
}

function CampaignForm(props: { campaign?: Campaign; business?: string; onSaved: () => void }) {
  const c = props.campaign;
  const [f, setF] = useState(() => initial(c, props.business));
  const [error, setError] = useState<unknown>(null);
  const errors = errorPaths(error);
  const bind = (k: string) => ({
    name: k,
    value: f[k],
    onInput: (e: Event) => setF({ ...f, [k]: value(e) }),
  });
  const channels = f.channels.split(',').filter(Boolean);
  const submit = async (e: Event) => {
    e.preventDefault();
    const segments = f.segments_all
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    const utc = (d: string) => new Date(`${d}T00:00:00Z`).toISOString();
    const body = {
      business_id: f.business_id.trim(),
      name: f.name.trim(),
      status: f.status,
      creative: { text: f.text },
      targeting: {
        ...(segments.length ? { segments_all: segments } : {}),
        ...(channels.length ? { channels } : {}),
      },
      schedule: { start: f.start ? utc(f.start) : '', ...(f.end ? { end: utc(f.end) } : {}) },
      budget: { total_micros: Math.round(Number(f.budget) * M) },
      bid: { cpm_micros: Math.round(Number(f.cpm) * M) },
      frequency_cap: { max: Number(f.cap_max), per_seconds: Math.round(Number(f.cap_hours) * 3600) },
      pacing: f.pacing,
    };
    try {
      if (c) await call('PUT', `/v1/campaigns/${encodeURIComponent(c.id)}`, body);
      else await post('/v1/campaigns', body);
      setError(null);
      props.onSaved();
      setParams({ edit: undefined });
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="editor campaign-form" onSubmit={submit}>
      <h2>{c ? `Edit ${c.name}` : 'New campaign'}</h2>
      <Field label="Business" error={errors.get('business_id')}>
        <input required readOnly={Boolean(c)} {...bind('business_id')} />
      </Field>
      <Field label="Name" error={errors.get('name')}>
        <input required {...bind('name')} />
      </Field>
      <Field label="Status">
        <select {...bind('status')}>
          <option value="active">active</option>
          <option value="paused">paused</option>
        </select>
      </Field>
      <Field label="Message text" error={errors.get('creative.text')}>
        <textarea required {...bind('text')} />
      </Field>
      <Field label="Target segments (ids, comma-separated)" error={errors.get('targeting.segments_all')}>
        <input {...bind('segments_all')} />
      </Field>
      <fieldset>
        <legend>Channels (none checked: every channel)</legend>
        {CHANNELS.map((ch) => (
          <label key={ch} class="check">
            <input
              type="checkbox"
              checked={channels.includes(ch)}
              onChange={() =>
                setF({
                  ...f,
                  channels: (channels.includes(ch)
                    ? channels.filter((x) => x !== ch)
                    : [...channels, ch]
                  ).join(','),
                })
              }
            />
            {ch}
          </label>
        ))}
      </fieldset>
      <Field label="Start (UTC day)" error={errors.get('schedule.start')}>
        <input type="date" required {...bind('start')} />
      </Field>
      <Field label="End (UTC day)" error={errors.get('schedule.end')}>
        <input type="date" {...bind('end')} />
      </Field>
      <Field label="Budget (currency units)" error={errors.get('budget.total_micros')}>
        <input type="number" step="0.01" required {...bind('budget')} />
      </Field>
      <Field label="Bid per 1000 impressions" error={errors.get('bid')}>
        <input type="number" step="0.01" required {...bind('cpm')} />
      </Field>
      <Field label="Frequency cap: at most" error={errors.get('frequency_cap.max')}>
        <input type="number" required {...bind('cap_max')} />
      </Field>
      <Field label="per hours" error={errors.get('frequency_cap.per_seconds')}>
        <input type="number" required {...bind('cap_hours')} />
      </Field>
      <Field label="Pacing">
        <select {...bind('pacing')}>
          <option value="even">even</option>
          <option value="asap">asap</option>
        </select>
      </Field>
      <div class="row">
        <button type="submit">Save campaign</button>
        <button type="button" onClick={() => setParams({ edit: undefined })}>
          Cancel
        </button>
      </div>
      <ErrorText error={error} />
    </form>
  );
}

type Candidate = { campaign_id: string; eligible?: boolean; reason?: string } & Record<string, unknown>;

function WhyNot(props: { business?: string; campaigns: Campaign[] }) {
  const [result, setResult] = useState<{ decision_id: string | null; candidates?: Candidate[] } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const s = (k: string) => String(f.get(k) ?? '').trim();
    try {
      setError(null);
      setResult(
        await post('/v1/decisions', {
          user_id: s('user_id'),
          business_id: s('business_id'),
          channel: s('channel'),
          ...(s('thread_id') ? { thread_id: s('thread_id') } : {}),
          explain: true,
        }),
      );
    } catch (err) {
      setError(err);
    }
  };
  const names = new Map(props.campaigns.map((c) => [c.id, c.name]));
  return (
    <form class="editor" onSubmit={submit}>
      <h2>Why not served?</h2>
      <p class="muted">
        Runs a real decision with explain for one user and thread (needs the adserver role).
      </p>
      <Field label="User">
        <input name="user_id" required />
      </Field>
      <Field label="Business">
        <input name="business_id" required defaultValue={props.business ?? ''} />
      </Field>
      <Field label="Thread (optional)">
        <input name="thread_id" />
      </Field>
      <Field label="Channel">
        <select name="channel">
          {CHANNELS.map((c) => (
            <option key={c}>{c}</option>
          ))}
        </select>
      </Field>
      <button type="submit">Explain</button>
      <ErrorText error={error} />
      {result && (
        <DataTable
          caption={result.decision_id ? `Served decision ${result.decision_id}` : 'Nothing was served'}
          rows={(result.candidates ?? []).map((c) => ({
            campaign: names.get(c.campaign_id) ?? c.campaign_id,
            reason: String(c.reason ?? (c.eligible ? 'eligible' : '')),
            detail: JSON.stringify(c),
          }))}
          columns={[
            { key: 'campaign', label: 'Campaign' },
            { key: 'reason', label: 'Reason' },
            { key: 'detail', label: 'Detail' },
          ]}
        />
      )}
    </form>
  );
}
