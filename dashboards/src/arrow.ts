import { Float64, Table, Utf8, makeData, makeVector, tableToIPC } from 'apache-arrow';
import type { Column } from './export.ts';

// Columns are assembled from their buffers directly: Arrow's builders compile a null check with
// `new Function`, which the dashboards' CSP (no 'unsafe-eval') refuses.

function validity(values: unknown[]) {
  const bitmap = new Uint8Array(Math.ceil(values.length / 8));
  let nulls = 0;
  values.forEach((v, i) => {
    if (v === null || v === undefined) nulls++;
    else bitmap[i >> 3] |= 1 << (i & 7);
  });
  return { nullBitmap: bitmap, nullCount: nulls };
}

function numbers(values: unknown[]) {
  const data = Float64Array.from(values, (v) => (typeof v === 'number' ? v : 0));
  return makeData({ type: new Float64(), length: values.length, data, ...validity(values) });
}

function strings(values: unknown[]) {
  const enc = new TextEncoder();
  const parts = values.map((v) => enc.encode(v === null || v === undefined ? '' : String(v)));
  const valueOffsets = new Int32Array(values.length + 1);
  parts.forEach((p, i) => {
    valueOffsets[i + 1] = valueOffsets[i] + p.length;
  });
  const data = new Uint8Array(valueOffsets[values.length]);
  parts.forEach((p, i) => {
    data.set(p, valueOffsets[i]);
  });
  return makeData({ type: new Utf8(), length: values.length, valueOffsets, data, ...validity(values) });
}

export function toArrow<R>(columns: Column<R>[], rows: R[]): Uint8Array {
  const vectors = Object.fromEntries(
    columns.map((c) => {
      const values = rows.map((r) => r[c.key] as unknown);
      const numeric = c.kind === 'number' && values.every((v) => v === null || typeof v === 'number');
      return [c.key, numeric ? makeVector(numbers(values)) : makeVector(strings(values))];
    }),
  );
  return tableToIPC(new Table(vectors), 'stream');
}
