import { post } from '../api.ts';
import { useData } from '../data.ts';
import { daysAgo, endOf, startOf, today, validDay } from '../dates.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { DateRange } from '../range.tsx';
import { Bars, DataTable, ErrorText, Exports, Field, Loading, num, value } from '../ui.tsx';
import { setParams, useDebounced, useLocation } from '../url.ts';

const MODELS = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based'] as const;
type Answer = {
  rows: { campaign_id: string; conversions: number; value: number }[];
  unattributed: { conversions: number; value: number };
};
type Row = { campaign_id: string } & Record<string, number | string>;

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
  const { data, error, loading } = useData(key, async () => {
    const answers = await Promise.all(
      MODELS.map((model) => post<Answer>('/v1/reports/attribution', { ...JSON.parse(key), model })),
    );
    return answers;
  });
  const byCampaign = new Map<string, Row>();
  data?.forEach((a, i) => {
    const m = MODELS[i];
    const rows = [...a.rows, { campaign_id: '(unattributed)', ...a.unattributed }];
    for (const r of rows) {
      const row = byCampaign.get(r.campaign_id) ?? { campaign_id: r.campaign_id };
      row[`${m}_conversions`] = r.conversions;
      row[`${m}_value`] = r.value;
      byCampaign.set(r.campaign_id, row);
    }
  });
  const rows = [...byCampaign.values()];
  const columns = [
    { key: 'campaign_id', label: 'Campaign' },
    ...MODELS.flatMap((m) => [
      { key: `${m}_conversions`, label: `${m} conversions`, kind: 'number' as const },
      { key: `${m}_value`, label: `${m} value`, kind: 'number' as const },
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
        <>
          {rows
            .filter((r) => r.campaign_id !== '(unattributed)')
            .map((r) => (
              <figure key={r.campaign_id} class="model-bars">
                <figcaption>{r.campaign_id}: conversions by model</figcaption>
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
            caption="Conversions and value credited to each campaign, by model (value per the conversions' currency)"
            rows={rows}
            columns={columns.map((c) => (c.key === 'campaign_id' ? c : { ...c, render: fmt(c.key) }))}
          />
          <Exports name={fileName('attribution', business, from, to)} columns={columns} rows={rows} />
        </>
      )}
    </section>
  );
}
