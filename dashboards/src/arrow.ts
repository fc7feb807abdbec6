import { tableFromArrays, tableToIPC } from 'apache-arrow';
import type { Column } from './export.ts';

export function toArrow<R>(columns: Column<R>[], rows: R[]): Uint8Array {
  const arrays: Record<string, unknown[] | Float64Array> = {};
  for (const c of columns) {
    const values = rows.map((r) => r[c.key]);
    arrays[c.key] =
      c.kind === 'number' && values.every((v) => typeof v === 'number')
        ? Float64Array.from(values as number[])
        : values.map((v) => (v === null || v === undefined ? null : String(v)));
  }
  return tableToIPC(tableFromArrays(arrays as Parameters<typeof tableFromArrays>[0]), 'stream');
}
