import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import { type Column, exportRows } from './export.ts';

// Shared pieces: tables (every chart has one), bars drawn as SVG (sizes are attributes, never
// inline styles), export buttons and error text. Everything from the server is rendered as text.

export const value = (e: Event) => (e.currentTarget as HTMLInputElement).value;
export const num = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined || !Number.isFinite(n)
    ? '—'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
export const pct = (n: number | null | undefined) =>
  n === null || n === undefined ? '—' : `${num(n * 100, 1)}%`;

/** The currencies of money given per currency, sorted ("XXX": conversions without a currency). */
export const currenciesOf = (maps: Record<string, number>[]) =>
  [...new Set(maps.flatMap((m) => Object.keys(m)))].sort();

const cell = (v: unknown, kind?: string) =>
  kind === 'number' && typeof v === 'number' ? num(v, 2) : String(v ?? '');

export function DataTable<R>(props: {
  caption: string;
  columns: (Column<R> & { render?: (r: R) => ComponentChildren })[];
  rows: R[];
  foot?: ComponentChildren;
  sort?: { key: string; dir: 'asc' | 'desc'; onSort: (key: string) => void };
  testId?: string;
}) {
  const { sort } = props;
  return (
    // Focusable, so a keyboard can scroll a table wider than the screen.
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must take focus (WCAG 2.1.1)
    <section class="table-wrap" tabIndex={0} aria-label={props.caption}>
      <table data-testid={props.testId}>
        <caption>{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th
                key={c.key}
                scope="col"
                class={c.kind === 'number' ? 'n' : undefined}
                aria-sort={
                  sort?.key === c.key ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined
                }
              >
                {sort ? (
                  <button type="button" class="sort" onClick={() => sort.onSort(c.key)}>
                    {c.label}
                    {sort.key === c.key ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}
                  </button>
                ) : (
                  c.label
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.length === 0 ? (
            <tr>
              <td colSpan={props.columns.length}>No rows</td>
            </tr>
          ) : (
            props.rows.map((r, i) => (
              <tr key={i}>
                {props.columns.map((c) => (
                  <td key={c.key} class={c.kind === 'number' ? 'n' : undefined}>
                    {c.render ? c.render(r) : cell(r[c.key], c.kind)}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
        {props.foot}
      </table>
    </section>
  );
}

export function Exports<R>(props: { name: string; columns: Column<R>[]; rows: R[]; label?: string }) {
  const [error, setError] = useState('');
  const run = (format: 'csv' | 'arrow') =>
    exportRows(format, props.name, props.columns, props.rows).catch((e) => setError(String(e)));
  return (
    <div class="exports">
      <button type="button" onClick={() => run('csv')}>
        Export CSV{props.label ? ` (${props.label})` : ''}
      </button>
      <button type="button" onClick={() => run('arrow')}>
        Export Arrow
      </button>
      {error && <span class="error">{error}</span>}
    </div>
  );
}

/** Horizontal bars with their labels; the numbers are in the table under them. */
export function Bars(props: { items: { key?: string; label: string; value: number }[]; max?: number }) {
  const max = props.max ?? Math.max(1, ...props.items.map((i) => i.value));
  return (
    <ul class="barlist" aria-hidden="true">
      {props.items.map((it) => (
        <li key={it.key ?? it.label}>
          <span class="bar-label">{it.label}</span>
          <svg class="bar-track" width="100%" height="18" aria-hidden="true">
            <rect class="bar-bg" x="0" y="0" width="100%" height="18" />
            <rect
              class="bar"
              x="0"
              y="0"
              width={`${Math.max(0, Math.min(1, it.value / max)) * 100}%`}
              height="18"
            />
          </svg>
          <span class="bar-value">{num(it.value, 2)}</span>
        </li>
      ))}
    </ul>
  );
}

/** Columns over time: one per minute (or bucket), heights as attributes. */
export function Columns(props: { values: number[] }) {
  const max = Math.max(1, ...props.values);
  const w = 1000 / Math.max(1, props.values.length);
  return (
    <svg
      class="columns"
      viewBox="0 0 1000 120"
      preserveAspectRatio="none"
      width="100%"
      height="120"
      aria-hidden="true"
    >
      {props.values.map((v, i) => (
        <rect
          key={i}
          class="bar"
          x={i * w}
          y={120 - (v / max) * 118}
          width={Math.max(1, w - 1)}
          height={(v / max) * 118}
        />
      ))}
    </svg>
  );
}

export function ErrorText(props: { error: unknown; id?: string }) {
  if (!props.error) return null;
  const e = props.error;
  const text = e instanceof ApiError ? `${e.message} (${e.code})` : String(e);
  return (
    <p class="error" role="alert" id={props.id}>
      {text}
    </p>
  );
}

export function Field(props: { label: string; error?: string; children: ComponentChildren; id?: string }) {
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control is passed in as a child
    <label class="field">
      <span>{props.label}</span>
      {props.children}
      {props.error && <span class="error field-error">{props.error}</span>}
    </label>
  );
}

export function Loading(props: { loading: boolean }) {
  return props.loading ? (
    <p class="muted" aria-live="polite">
      Loading…
    </p>
  ) : null;
}
