import { post } from '../api.ts';
import { useData } from '../data.ts';
import { EVENT_TYPES, daysAgo, endOf, startOf, today, validDay } from '../dates.ts';
import type { Column } from '../export.ts';
import { fileName } from '../export.ts';
import type { Ctx } from '../main.tsx';
import { DateRange } from '../range.tsx';
import { Bars, DataTable, ErrorText, Exports, Field, Loading, num, pct, value } from '../ui.tsx';
import { jsonParam, setParams, useDebounced, useLocation } from '../url.ts';

type Step = { type: string; where?: Record<string, string> };
type StepAnswer = { type: string; users: number; median_seconds_from_previous: number | null };
type Answer = { steps?: StepAnswer[]; groups?: { value: string; steps: StepAnswer[] }[] };
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

export function Funnels(props: { ctx: Ctx }) {
  const { q } = useLocation();
  const steps = jsonParam<Step[]>(q, 'steps', DEFAULT_STEPS);
  const window = Number(q.get('window') ?? 604_800);
  const from = validDay(q.get('from')) ?? daysAgo(29);
  const to = validDay(q.get('to')) ?? today();
  const breakdown = q.get('breakdown') ?? '';
  const mode = q.get('mode') ?? 'ordered';
  const business = props.ctx.business;
  const request = {
    steps: steps.map((s) => (s.where && Object.keys(s.where).length ? s : { type: s.type })),
    window_seconds: window,
    from: startOf(from),
    to: endOf(to),
    mode,
    ...(business ? { business_id: business } : {}),
    ...(breakdown ? { breakdown } : {}),
  };
  const key = useDebounced(JSON.stringify(request), 300);
  const {
    data,
    error,
    loading,
    key: shown,
  } = useData(key, () => post<Answer>('/v1/reports/funnel', JSON.parse(key)));
  const rows = data ? funnelRows(data) : [];
  const drop = biggestDrop(rows);

  const setSteps = (next: Step[]) => setParams({ steps: JSON.stringify(next) }, true);
  const setStep = (i: number, s: Step) => setSteps(steps.map((x, j) => (j === i ? s : x)));

  return (
    <section>
      <form class="editor" onSubmit={(e) => e.preventDefault()}>
        <fieldset>
          <legend>Steps</legend>
          <ol class="steps">
            {steps.map((s, i) => {
              const [field, val] = Object.entries(s.where ?? {})[0] ?? ['', ''];
              return (
                <li key={i}>
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
                  <Field label="where field">
                    <input
                      value={field}
                      placeholder="channel or props.name"
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
                  <button
                    type="button"
                    disabled={steps.length <= 2}
                    onClick={() => setSteps(steps.filter((_, j) => j !== i))}
                  >
                    Remove step {i + 1}
                  </button>
                </li>
              );
            })}
          </ol>
          <button
            type="button"
            disabled={steps.length >= 10}
            onClick={() => setSteps([...steps, { type: 'order.placed' }])}
          >
            Add step
          </button>
        </fieldset>
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
            <option value="strict">strict (no other event between steps)</option>
            <option value="unordered">unordered</option>
          </select>
        </Field>
        <Field label="Breakdown">
          <select name="breakdown" value={breakdown} onChange={(e) => setParams({ breakdown: value(e) })}>
            <option value="">none</option>
            <option value="channel">channel</option>
            <option value="business_id">business</option>
          </select>
        </Field>
        <DateRange from={from} to={to} />
      </form>
      <Loading loading={loading} />
      <ErrorText error={error} />
      {data && (
        <div data-testid="funnel-result" data-request={shown}>
          {drop && (
            <p class="drop" data-testid="biggest-drop">
              Biggest drop-off{drop.from.value ? ` (${drop.from.value})` : ''}: step {drop.from.step} (
              {drop.from.type}) → step {drop.to.step} ({drop.to.type}), {pct(drop.lost)} lost
            </p>
          )}
          <Bars
            items={rows.map((r) => ({ label: `${r.value}|${r.step}`, value: r.users }))}
            max={Math.max(1, ...rows.map((r) => r.users))}
          />
          <DataTable
            testId="funnel-table"
            caption="Users reaching each step"
            rows={rows}
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
            ]}
          />
          <Exports
            name={fileName('funnel', business, from, to, breakdown)}
            columns={EXPORT_COLUMNS}
            rows={rows}
          />
        </div>
      )}
      <details>
        <summary>API request</summary>
        <pre data-testid="funnel-request">{JSON.stringify(request, null, 2)}</pre>
      </details>
    </section>
  );
}

function duration(s: number | null) {
  if (s === null) return '—';
  if (s < 90) return `${num(s)} s`;
  if (s < 5400) return `${num(s / 60, 1)} min`;
  if (s < 172_800) return `${num(s / 3600, 1)} h`;
  return `${num(s / 86_400, 1)} d`;
}
