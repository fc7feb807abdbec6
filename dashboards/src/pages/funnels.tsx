import { post } from '../api.ts';
import { useData } from '../data.ts';
import { EVENT_TYPES, daysAgo, endOf, startOf, today, validDay } from '../dates.ts';
import type { Column } from '../export.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { DateRange } from '../range.tsx';
import { Bars, DataTable, ErrorText, Exports, Field, Loading, num, pct, value } from '../ui.tsx';
import { jsonParam, setParams, useDebounced, useLocation } from '../url.ts';
import { type TimeToConvert, TimeToConvertView, duration } from './time-to-convert.tsx';

type Step = { type: string; where?: Record<string, string> };
type StepAnswer = { type: string; users: number; median_seconds_from_previous: number | null };
type Answer = {
  steps?: StepAnswer[];
  time_to_convert?: TimeToConvert;
  groups?: { value: string; steps: StepAnswer[]; time_to_convert?: TimeToConvert }[];
};
type Row = {
  value: string;
  step: number;
  type: string;
  users: number;
  median_seconds_from_previous: number | null;
  of_first: number | null;
  of_previous: number | null;
};

const DEFAULT_STEPS: Step[] = [
  { type: 'message.received' },
  { type: 'sponsored.served' },
  { type: 'sponsored.clicked' },
  { type: 'order.placed' },
];
const WINDOWS = [
  { label: '1 hour', s: 3600 },
  { label: '1 day', s: 86_400 },
  { label: '7 days', s: 604_800 },
  { label: '30 days', s: 2_592_000 },
];
// The columns of the API's CSV, in its order: the export equals it.
const EXPORT_COLUMNS: Column<Row>[] = [
  { key: 'value', label: 'Breakdown' },
  { key: 'step', label: 'Step', kind: 'number' },
  { key: 'type', label: 'Event type' },
  { key: 'users', label: 'Users', kind: 'number' },
  { key: 'median_seconds_from_previous', label: 'Median seconds from previous', kind: 'number' },
];

export function funnelRows(a: Answer): Row[] {
  const groups = a.groups ?? [{ value: '', steps: a.steps ?? [] }];
  return groups.flatMap((g) =>
    g.steps.map((s, i) => ({
      value: g.value,
      step: i + 1,
      ...s,
      of_first: g.steps[0].users ? s.users / g.steps[0].users : null,
      of_previous: i === 0 ? null : g.steps[i - 1].users ? s.users / g.steps[i - 1].users : null,
    })),
  );
}

function biggestDrop(rows: Row[]) {
  let best: { from: Row; to: Row; lost: number } | undefined;
  for (let i = 1; i < rows.length; i++) {
    const [a, b] = [rows[i - 1], rows[i]];
    if (a.value !== b.value || !a.users) continue;
    const lost = 1 - b.users / a.users;
    if (!best || lost > best.lost) best = { from: a, to: b, lost };
  }
  return best;
}

type Exclusion = { type: string; between: [number, number] };

/** The same request over the period of the same length just before. */
function previousPeriod<T extends { from: string; to: string }>(r: T): T {
  const from = Date.parse(r.from);
  const len = Date.parse(r.to) - from;
  return { ...r, from: new Date(from - len).toISOString(), to: r.from };
}

export function Funnels(props: { ctx: Ctx }) {
  const { q } = useLocation();
  const steps = jsonParam<Step[]>(q, 'steps', DEFAULT_STEPS);
  const exclusions = jsonParam<Exclusion[]>(q, 'exclude', []);
  const window = Number(q.get('window') ?? 604_800);
  const from = validDay(q.get('from')) ?? daysAgo(29);
  const to = validDay(q.get('to')) ?? today();
  const breakdown = q.get('breakdown') ?? '';
  const mode = q.get('mode') ?? 'ordered';
  const compare = q.get('compare') === '1';
  const business = props.ctx.business;
  const request = {
    steps: steps.map((s) => (s.where && Object.keys(s.where).length ? s : { type: s.type })),
    window_seconds: window,
    from: startOf(from),
    to: endOf(to),
    mode,
    ...(exclusions.length ? { exclusions } : {}),
    ...(business ? { business_id: business } : {}),
    ...(breakdown ? { breakdown } : {}),
    time_to_convert: true,
  };
  const key = useDebounced(JSON.stringify(request), 300);
  const {
    data,
    error,
    loading,
    key: shown,
  } = useData(key, () => post<Answer>('/v1/reports/funnel', JSON.parse(key)));
  const prevKey = compare ? key : null;
  const prev = useData(prevKey, () => post<Answer>('/v1/reports/funnel', previousPeriod(JSON.parse(key))));
  const rows = data ? funnelRows(data) : [];
  const prevUsers = new Map(
    (prev.data ? funnelRows(prev.data) : []).map((r) => [`${r.value}|${r.step}`, r.users] as const),
  );
  const shownRows = rows.map((r) => {
    const p = prevUsers.get(`${r.value}|${r.step}`);
    return { ...r, previous_users: compare ? (p ?? 0) : null, change: compare && p ? r.users / p - 1 : null };
  });
  const drop = biggestDrop(rows);

  const setSteps = (next: Step[]) => setParams({ steps: JSON.stringify(next) }, true);
  const setStep = (i: number, s: Step) => setSteps(steps.map((x, j) => (j === i ? s : x)));
  const setExclusions = (next: Exclusion[]) =>
    setParams({ exclude: next.length ? JSON.stringify(next) : undefined }, true);
  const exportColumns = compare
    ? [
        ...EXPORT_COLUMNS,
        { key: 'previous_users' as const, label: 'Previous period users', kind: 'number' as const },
      ]
    : EXPORT_COLUMNS;

  return (
    <section class="split">
      <form class="editor side" onSubmit={(e) => e.preventDefault()}>
        <fieldset>
          <legend>Steps</legend>
          <ol class="steps">
            {steps.map((s, i) => {
              const [field, val] = Object.entries(s.where ?? {})[0] ?? ['', ''];
              return (
                <li key={i} class="step">
                  <div class="step-head">
                    <Field label={`Step ${i + 1} event`}>
                      <select
                        name={`step-${i + 1}`}
                        value={s.type}
                        onChange={(e) => setStep(i, { ...s, type: value(e) })}
                      >
                        {EVENT_TYPES.map((t) => (
                          <option key={t}>{t}</option>
                        ))}
                      </select>
                    </Field>
                    <button
                      type="button"
                      class="icon"
                      aria-label={`Remove step ${i + 1}`}
                      disabled={steps.length <= 2}
                      onClick={() => setSteps(steps.filter((_, j) => j !== i))}
                    >
                      ×
                    </button>
                  </div>
                  <div class="pair">
                    <Field label="where">
                      <input
                        value={field}
                        placeholder="channel, props.name"
                        onChange={(e) =>
                          setStep(i, { type: s.type, ...(value(e) ? { where: { [value(e)]: val } } : {}) })
                        }
                      />
                    </Field>
                    <Field label="equals">
                      <input
                        value={val}
                        disabled={!field}
                        onChange={(e) => setStep(i, { type: s.type, where: { [field]: value(e) } })}
                      />
                    </Field>
                  </div>
                </li>
              );
            })}
          </ol>
          <button
            type="button"
            class="secondary"
            disabled={steps.length >= 10}
            onClick={() => setSteps([...steps, { type: 'order.placed' }])}
          >
            Add step
          </button>
        </fieldset>
        <fieldset>
          <legend>Exclusions</legend>
          {exclusions.map((x, i) => (
            <div key={i} class="pair">
              <Field label={`Exclusion ${i + 1}: did`}>
                <select
                  value={x.type}
                  onChange={(e) =>
                    setExclusions(exclusions.map((y, j) => (j === i ? { ...y, type: value(e) } : y)))
                  }
                >
                  {EVENT_TYPES.map((t) => (
                    <option key={t}>{t}</option>
                  ))}
                </select>
              </Field>
              <Field label="between steps">
                <select
                  value={x.between.join('-')}
                  onChange={(e) =>
                    setExclusions(
                      exclusions.map((y, j) =>
                        j === i ? { ...y, between: value(e).split('-').map(Number) as [number, number] } : y,
                      ),
                    )
                  }
                >
                  {steps.slice(1).map((_, k) => (
                    <option key={k} value={`${k + 1}-${k + 2}`}>
                      {k + 1} and {k + 2}
                    </option>
                  ))}
                </select>
              </Field>
              <button
                type="button"
                class="icon"
                aria-label={`Remove exclusion ${i + 1}`}
                onClick={() => setExclusions(exclusions.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </div>
          ))}
          <button
            type="button"
            class="secondary"
            disabled={exclusions.length >= 5 || mode === 'unordered'}
            onClick={() => setExclusions([...exclusions, { type: 'conversation.blocked', between: [1, 2] }])}
          >
            Add exclusion
          </button>
        </fieldset>
        <div class="pair">
          <Field label="Conversion window">
            <select name="window" value={String(window)} onChange={(e) => setParams({ window: value(e) })}>
              {WINDOWS.map((w) => (
                <option key={w.s} value={String(w.s)}>
                  {w.label}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Order">
            <select name="mode" value={mode} onChange={(e) => setParams({ mode: value(e) })}>
              <option value="ordered">ordered</option>
              <option value="strict">strict</option>
              <option value="unordered">unordered</option>
            </select>
          </Field>
        </div>
        <div class="pair">
          <Field label="Breakdown">
            <select name="breakdown" value={breakdown} onChange={(e) => setParams({ breakdown: value(e) })}>
              <option value="">none</option>
              <option value="channel">channel</option>
              <option value="business_id">business</option>
            </select>
          </Field>
          <label class="check">
            <input
              type="checkbox"
              name="compare"
              checked={compare}
              onChange={(e) =>
                setParams({ compare: (e.currentTarget as HTMLInputElement).checked ? '1' : undefined })
              }
            />
            Compare with the previous period
          </label>
        </div>
        <DateRange from={from} to={to} />
      </form>
      <div class="results">
        <Loading loading={loading} />
        <ErrorText error={error ?? prev.error} />
        {data && (
          <div data-testid="funnel-result" data-request={shown}>
            {drop && (
              <p class="drop" data-testid="biggest-drop">
                Biggest drop-off{drop.from.value ? ` (${drop.from.value})` : ''}: step {drop.from.step} (
                {drop.from.type}) → step {drop.to.step} ({drop.to.type}), {pct(drop.lost)} lost
              </p>
            )}
            <Bars
              items={rows.map((r) => ({
                key: `${r.value}|${r.step}`,
                label: `${r.value ? `${r.value}: ` : ''}${r.step}. ${r.type}`,
                value: r.users,
              }))}
              max={Math.max(1, ...rows.map((r) => r.users))}
            />
            <DataTable
              testId="funnel-table"
              caption="Users reaching each step"
              rows={shownRows}
              columns={[
                ...(breakdown ? [{ key: 'value' as const, label: breakdown }] : []),
                { key: 'step', label: 'Step', kind: 'number' },
                { key: 'type', label: 'Event type' },
                { key: 'users', label: 'Users', kind: 'number', render: (r) => num(r.users) },
                { key: 'of_first', label: '% of first', kind: 'number', render: (r) => pct(r.of_first) },
                {
                  key: 'of_previous',
                  label: '% of previous',
                  kind: 'number',
                  render: (r) => pct(r.of_previous),
                },
                {
                  key: 'median_seconds_from_previous',
                  label: 'Median time from previous',
                  kind: 'number',
                  render: (r) => duration(r.median_seconds_from_previous),
                },
                ...(compare
                  ? [
                      {
                        key: 'previous_users' as const,
                        label: 'Previous period',
                        kind: 'number' as const,
                        render: (r: (typeof shownRows)[number]) => num(r.previous_users),
                      },
                      {
                        key: 'change' as const,
                        label: 'Change',
                        kind: 'number' as const,
                        render: (r: (typeof shownRows)[number]) =>
                          r.change === null ? '—' : `${r.change >= 0 ? '+' : ''}${pct(r.change)}`,
                      },
                    ]
                  : []),
              ]}
            />
            {compare && (
              <p class="muted">
                Previous period: the same number of days just before {from}, with the same steps.
              </p>
            )}
            <Exports
              name={fileName('funnel', business, from, to, breakdown)}
              columns={exportColumns}
              rows={shownRows}
            />
            <TimeToConvertView
              groups={data.groups ?? [{ value: '', time_to_convert: data.time_to_convert }]}
              name={[business, from, to, breakdown]}
            />
          </div>
        )}
        <details>
          <summary>API request</summary>
          <pre data-testid="funnel-request">{JSON.stringify(request, null, 2)}</pre>
        </details>
      </div>
    </section>
  );
}
