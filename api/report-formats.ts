import { Readable } from 'node:stream';
import { Float64, Table, Uint32, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import type { FastifyReply } from 'fastify';
import { ParleyError } from '../core/errors.ts';
import type { Store } from '../core/store/client.ts';

// Content negotiation for reports and exports: JSON (default), CSV, or an Arrow IPC stream.
// Tables that come straight from one SQL statement are streamed by ClickHouse in the asked
// format; small tables shaped in code (funnels) are built here with apache-arrow.

export const CONTENT_TYPES = {
  json: 'application/json',
  csv: 'text/csv',
  arrow: 'application/vnd.apache.arrow.stream',
} as const;
export type Format = keyof typeof CONTENT_TYPES;

/** The best format for an Accept header (q-values honoured); 406 when none is offered. */
export function pickFormat(accept: string | undefined): Format {
  if (!accept?.trim()) return 'json';
  const ranges = accept
    .split(',')
    .map((part, i) => {
      const [type, ...params] = part.trim().toLowerCase().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { type: type.trim(), q: q ? Number(q.slice(2)) : 1, i };
    })
    .filter((r) => r.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const r of ranges) {
    if (r.type === '*/*' || r.type === 'application/*' || r.type === CONTENT_TYPES.json) return 'json';
    if (r.type === CONTENT_TYPES.csv || r.type === 'text/*') return 'csv';
    if (r.type === CONTENT_TYPES.arrow) return 'arrow';
  }
  throw new ParleyError(
    'PARLEY_ERR_NOT_ACCEPTABLE',
    `Cannot answer with ${accept}; ask for ${Object.values(CONTENT_TYPES).join(', ')}`,
  );
}

export type Column = { name: string; type: 'string' | 'float' | 'count' };
export type Row = Record<string, string | number | null>;

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(columns: Column[], rows: Row[]): string {
  const lines = [columns.map((c) => csvCell(c.name)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvCell(r[c.name] ?? null)).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function toArrow(columns: Column[], rows: Row[]): Uint8Array {
  const types = { string: () => new Utf8(), float: () => new Float64(), count: () => new Uint32() };
  const vectors = Object.fromEntries(
    columns.map((c) => [
      c.name,
      vectorFromArray(
        rows.map((r) => r[c.name] ?? null),
        types[c.type](),
      ),
    ]),
  );
  return tableToIPC(new Table(vectors), 'stream');
}

/** Sends a table built in code in the negotiated (non-JSON) format. */
export function sendTable(
  reply: FastifyReply,
  format: Exclude<Format, 'json'>,
  columns: Column[],
  rows: Row[],
) {
  reply.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : CONTENT_TYPES.arrow);
  return reply.send(format === 'csv' ? toCsv(columns, rows) : Buffer.from(toArrow(columns, rows)));
}

/** Streams one statement's result in the negotiated (non-JSON) format, straight from ClickHouse. */
export async function streamQuery(
  reply: FastifyReply,
  store: Store,
  format: Exclude<Format, 'json'>,
  q: { query: string; query_params: Record<string, unknown> },
) {
  const { stream } = await store.client.exec({
    query: `${q.query}\nFORMAT ${format === 'csv' ? 'CSVWithNames' : 'ArrowStream'}`,
    query_params: q.query_params,
    clickhouse_settings: {
      // The JavaScript Arrow reader cannot decode compressed record batches.
      output_format_arrow_compression_method: 'none',
      output_format_arrow_string_as_string: 1,
      format_csv_null_representation: '',
    },
  });
  reply.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : CONTENT_TYPES.arrow);
  return reply.send(stream instanceof Readable ? stream : Readable.from(stream as AsyncIterable<Uint8Array>));
}

/** The events page query as an export table: occurred_at as a UTC timestamp, props as JSON text. */
export function exportEventsQuery(q: { query: string; query_params: Record<string, unknown> }) {
  return {
    query: `SELECT event_id, type, fromUnixTimestamp64Milli(toInt64(ms), 'UTC') AS occurred_at, business_id, user_id, thread_id, channel, props FROM (${q.query})`,
    query_params: q.query_params,
  };
}
