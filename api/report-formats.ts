import { Readable } from 'node:stream';
import {
  Float64,
  Table,
  TimestampMillisecond,
  Uint32,
  Utf8,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
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

export type Column = { name: string; type: 'string' | 'float' | 'count' | 'time' };
/** A time cell holds epoch milliseconds. */
export type Row = Record<string, string | number | null>;

// One CSV dialect for every report and listing (docs/reports.md, "CSV"): RFC 4180, a header row,
// CRLF line ends, a cell quoted only when it holds a comma, quote, CR or LF, an empty cell for
// null, times as ISO-8601 UTC with Z, and text cells a spreadsheet would run as a formula
// (starting with = + - @ tab or CR, OWASP's rule) prefixed with a single quote.
const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV cell; `text` cells (not numbers or times) are neutralised against formula injection. */
export function csvCell(v: string | number | null, text: boolean): string {
  if (v === null) return '';
  let s = String(v);
  if (text && FORMULA_START.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const csvValue = (c: Column, v: string | number | null | undefined) =>
  csvCell(
    v === undefined || v === null ? null : c.type === 'time' ? new Date(Number(v)).toISOString() : v,
    c.type === 'string',
  );

export function toCsv(columns: Column[], rows: Row[]): string {
  const lines = [columns.map((c) => csvCell(c.name, true)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvValue(c, r[c.name])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function toArrow(columns: Column[], rows: Row[]): Uint8Array {
  const types = {
    string: () => new Utf8(),
    float: () => new Float64(),
    count: () => new Uint32(),
    time: () => new TimestampMillisecond('UTC'),
  };
  const vectors = Object.fromEntries(
    columns.map((c) => [
      c.name,
      vectorFromArray(
        rows.map((r) => {
          const v = r[c.name] ?? null;
          return c.type === 'time' && v !== null ? Number(v) : v;
        }),
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

/**
 * ClickHouse's JSONCompactEachRowWithNamesAndTypes (names, then types, then one array per row)
 * as CSV in the dialect above, row by row. A column is text unless its type is a number, a
 * boolean or a time.
 */
export async function* compactJsonToCsv(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  let rest = '';
  let names: string[] | undefined;
  let text: boolean[] | undefined;
  const decoder = new TextDecoder();
  const line = (l: string): string | undefined => {
    if (l.trim() === '') return undefined;
    const cells = JSON.parse(l) as (string | number | boolean | null)[];
    if (!names) {
      names = cells as string[];
      return undefined;
    }
    if (!text) {
      text = (cells as string[]).map(
        (t) =>
          !/^(Nullable\()?(U?Int\d+|Float\d+|Decimal|Bool|DateTime|Date)/.test(
            t.replace(/^LowCardinality\(/, ''),
          ),
      );
      return `${names.map((n) => csvCell(n, true)).join(',')}\r\n`;
    }
    const isText = text;
    return `${cells.map((v, i) => csvCell(typeof v === 'boolean' ? Number(v) : v, isText[i])).join(',')}\r\n`;
  };
  for await (const chunk of chunks) {
    rest += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    const out = lines
      .map(line)
      .filter((l) => l !== undefined)
      .join('');
    if (out) yield out;
  }
  rest += decoder.decode();
  const last = line(rest);
  if (last) yield last;
}

/** Streams one statement's result in the negotiated (non-JSON) format, straight from ClickHouse. */
export async function streamQuery(
  reply: FastifyReply,
  store: Store,
  format: Exclude<Format, 'json'>,
  q: { query: string; query_params: Record<string, unknown> },
) {
  const source = await store.stream({
    ...q,
    format: format === 'csv' ? 'JSONCompactEachRowWithNamesAndTypes' : 'ArrowStream',
    settings: {
      // The JavaScript Arrow reader cannot decode compressed record batches.
      output_format_arrow_compression_method: 'none',
      output_format_arrow_string_as_string: 1,
      // Times as ISO-8601 UTC with Z, the form every other answer uses.
      date_time_output_format: 'iso',
    },
  });
  reply.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : CONTENT_TYPES.arrow);
  return reply.send(format === 'csv' ? Readable.from(compactJsonToCsv(source)) : source);
}
