// Exports what a view shows: the same columns and rows as its table, as CSV (RFC 4180, like the
// API's) or Arrow (apache-arrow, loaded only when asked for).

export type Column<R> = { key: keyof R & string; label: string; kind?: 'text' | 'number' };

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = String(v);
  // A cell a spreadsheet would run as a formula is kept as text.
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv<R>(columns: Column<R>[], rows: R[]): string {
  const lines = [columns.map((c) => csvCell(c.key)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvCell(r[c.key])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function download(data: Blob, fileName: string) {
  const url = URL.createObjectURL(data);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function exportRows<R>(format: 'csv' | 'arrow', name: string, columns: Column<R>[], rows: R[]) {
  if (format === 'csv')
    return download(new Blob([toCsv(columns, rows)], { type: 'text/csv' }), `${name}.csv`);
  const { toArrow } = await import('./arrow.ts');
  download(
    new Blob([toArrow(columns, rows) as Uint8Array<ArrayBuffer>], {
      type: 'application/vnd.apache.arrow.stream',
    }),
    `${name}.arrow`,
  );
}

/** A file name that says what is in it: view, filters and dates. */
export function fileName(...parts: (string | undefined | null)[]) {
  return ['parley', ...parts]
    .filter((p): p is string => Boolean(p))
    .join('-')
    .replace(/[^A-Za-z0-9._-]+/g, '_');
}
