import { fileName } from '../export.ts';
import { Bars, DataTable, Exports, num } from '../ui.tsx';

// The funnel's time to convert: users who reached the last step, by time from the first step to
// the last (the funnel report's `time_to_convert`, docs/reports.md).

export type TimeToConvert = {
  median_seconds: number | null;
  buckets: { from_seconds: number; to_seconds: number; users: number }[];
};
type Row = { value: string; from_seconds: number; to_seconds: number; bucket: string; users: number };

export function duration(s: number | null) {
  if (s === null) return '—';
  if (s < 90) return `${num(s)} s`;
  if (s < 5400) return `${num(s / 60, 1)} min`;
  if (s < 172_800) return `${num(s / 3600, 1)} h`;
  return `${num(s / 86_400, 1)} d`;
}

export function ttcRows(groups: { value: string; time_to_convert?: TimeToConvert }[]): Row[] {
  return groups.flatMap((g) =>
    (g.time_to_convert?.buckets ?? []).map((b) => ({
      value: g.value,
      ...b,
      bucket: `${duration(b.from_seconds)} – ${duration(b.to_seconds)}`,
    })),
  );
}

export function TimeToConvertView(props: {
  groups: { value: string; time_to_convert?: TimeToConvert }[];
  name: (string | undefined)[];
}) {
  const rows = ttcRows(props.groups);
  if (!rows.length) return null;
  const breakdown = props.groups.some((g) => g.value !== '');
  const columns = [
    ...(breakdown ? [{ key: 'value' as const, label: 'Breakdown' }] : []),
    { key: 'bucket' as const, label: 'Time to convert' },
    { key: 'from_seconds' as const, label: 'From (s)', kind: 'number' as const },
    { key: 'to_seconds' as const, label: 'To (s)', kind: 'number' as const },
    { key: 'users' as const, label: 'Users', kind: 'number' as const },
  ];
  return (
    <section class="ttc" aria-labelledby="ttc-title" data-testid="time-to-convert">
      <h2 id="ttc-title">Time to convert</h2>
      <p data-testid="ttc-median">
        {props.groups
          .map(
            (g) =>
              `${g.value ? `${g.value}: ` : ''}median ${duration(g.time_to_convert?.median_seconds ?? null)}`,
          )
          .join('; ')}{' '}
        from the first step to the last, over users who reached the last step.
      </p>
      <Bars
        items={rows.map((r) => ({
          key: `${r.value}|${r.from_seconds}`,
          label: `${r.value ? `${r.value}: ` : ''}${r.bucket}`,
          value: r.users,
        }))}
      />
      <DataTable
        testId="ttc-table"
        caption="Users who reached the last step, by time from the first step to the last"
        rows={rows}
        columns={columns.map((c) =>
          c.key === 'users' || c.key === 'from_seconds' || c.key === 'to_seconds'
            ? { ...c, render: (r: Row) => num(r[c.key]) }
            : c,
        )}
      />
      <Exports
        name={fileName('funnel-time-to-convert', ...props.name)}
        columns={columns}
        rows={rows}
        label="time to convert"
      />
    </section>
  );
}
