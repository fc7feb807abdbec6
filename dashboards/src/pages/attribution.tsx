import { post } from '../api.ts';
import { useData } from '../data.ts';
import { daysAgo, endOf, startOf, today, validDay } from '../dates.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { DateRange } from '../range.tsx';
import { Bars, DataTable, ErrorText, Exports, Field, Loading, currenciesOf, num, value } from '../ui.tsx';
import { setParams, useDebounced, useLocation } from '../url.ts';

const MODELS = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based'] as const;
type Totals = { conversions: number; value_by_currency: Record<string, number> };
type Answer = {
  rows: ({ campaign_id: string; campaign_name: string | null } & Totals)[];
  unattributed: Totals;
};
type Row = { campaign_id: string; campaign_name: string } & Record<string, number | string>;
const UNATTRIBUTED = '(unattributed)';

export function Attribution(props: { ctx: Ctx }) {
  const { q } = useLocation();
  const from = validDay(q.get('from')) ?? daysAgo(29);
  const to = validDay(q.get('to')) ?? today();
  const click = Number(q.get('click') ?? 604_800);
  const view = Number(q.get('view') ?? 86_400);
  const business = props.ctx.business;
  const base = {
    from: startOf(from),
    to: endOf(to),
    click_window_seconds: click,
    view_window_seconds: view,
    ...(business ? { business_id: business } : {}),
  };
  const key = useDebounced(JSON.stringify(base), 300);
  const {
    data,
    error,
    loading,
    key: shown,
  } = useData(key, async () => {
    // Every model in one statement: one pass over the data instead of one per model.
    const { models } = await post<{ models: Answer[] }>('/v1/reports/attribution/models', {
      ...JSON.parse(key),
      models: MODELS,
    });
    return models;
  });
  // Value per currency, never summed across currencies: a column per model and currency.
  const currencies = currenciesOf(
    (data ?? []).flatMap((a) => [...a.rows, a.unattributed].map((r) => r.value_by_currency)),
  );
  const byCampaign = new Map<string, Row>();
  data?.forEach((a, i) => {
    const m = MODELS[i];
    const rows = [...a.rows, { campaign_id: UNATTRIBUTED, campaign_name: UNATTRIBUTED, ...a.unattributed }];
    for (const r of rows) {
      const row = byCampaign.get(r.campaign_id) ?? {
        campaign_id: r.campaign_id,
        campaign_name: r.campaign_name ?? r.campaign_id,
      };
      row[`${m}_conversions`] = r.conversions;
      for (const cur of currencies) row[`${m}_value_${cur}`] = r.value_by_currency[cur] ?? 0;
      byCampaign.set(r.campaign_id, row);
    }
  });
  const rows = [...byCampaign.values()];
  const columns: { key: string; label: string; kind?: 'number' }[] = [
    { key: 'campaign_name', label: 'Campaign' },
    { key: 'campaign_id', label: 'Campaign id' },
    ...MODELS.flatMap((m) => [
      { key: `${m}_conversions`, label: `${m} conversions`, kind: 'number' as const },
      ...currencies.map((cur) => ({
        key: `${m}_value_${cur}`,
        label: `${m} value ${cur}`,
        kind: 'number' as const,
      })),
    ]),
  ];
  // Linear, time-decay and position-based models split conversions: two decimals.
  const fmt = (k: string) => (r: Row) => num(Number(r[k] ?? 0), 2);
  return (
    <section>
      <form class="editor" onSubmit={(e) => e.preventDefault()}>
        <Field label="Click window (days)">
          <input
            type="number"
            min="1"
            value={click / 86_400}
            onChange={(e) => setParams({ click: String(Number(value(e)) * 86_400) })}
          />
        </Field>
        <Field label="View window (days)">
          <input
            type="number"
            min="0"
            value={view / 86_400}
            onChange={(e) => setParams({ view: String(Number(value(e)) * 86_400) })}
          />
        </Field>
        <DateRange from={from} to={to} />
      </form>
      <Loading loading={loading} />
      <ErrorText error={error} />
      {data && (
        <div data-testid="attribution-result" data-request={shown}>
          {rows
            .filter((r) => r.campaign_id !== UNATTRIBUTED)
            .map((r) => (
              <figure key={r.campaign_id} class="model-bars">
                <figcaption>{r.campaign_name}: conversions by model</figcaption>
                <Bars
                  items={MODELS.map((m) => ({ label: m, value: Number(r[`${m}_conversions`] ?? 0) }))}
                  max={Math.max(
                    1,
                    ...rows.flatMap((x) => MODELS.map((m) => Number(x[`${m}_conversions`] ?? 0))),
                  )}
                />
              </figure>
            ))}
          <DataTable
            testId="attribution-table"
            caption="Conversions and value credited to each campaign, by model (value per currency of the conversions, never summed across currencies; XXX: conversions without a currency)"
            rows={rows}
            columns={columns.map((c) => (c.kind === 'number' ? { ...c, render: fmt(c.key) } : c))}
          />
          <Exports name={fileName('attribution', business, from, to)} columns={columns} rows={rows} />
        </div>
      )}
    </section>
  );
}
