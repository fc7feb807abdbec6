// The parts of ClickHouse's HTTP interface the development endpoint speaks, as pure functions:
// how a request's URL parameters become settings, bound parameters and a format, and how an
// engine error becomes the response ClickHouse would send.

/** A ClickHouse server exception: `Code: <code>. DB::Exception: <message> (<TYPE>)`. */
export class ClickHouseException extends Error {
  constructor(
    readonly code: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'ClickHouseException';
  }
}

// ClickHouse's own error codes for the errors the endpoint raises itself.
export const CODES = {
  NOT_IMPLEMENTED: 48,
  SYNTAX_ERROR: 62,
  UNKNOWN_SETTING: 115,
  CANNOT_DECOMPRESS: 271,
  BAD_REQUEST_PARAMETER: 457,
  AUTHENTICATION_FAILED: 516,
  STD_EXCEPTION: 1001,
} as const;

export const exception = (type: keyof typeof CODES, message: string) =>
  new ClickHouseException(CODES[type], type, message);

// URL parameters the HTTP layer consumes; every other one is a setting (as in ClickHouse).
const HTTP_PARAMS = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'session_id',
  'session_timeout',
  'session_check',
  'user',
  'password',
  'quota_key',
  'role',
  'compress',
  'decompress',
  'buffer_size',
  'wait_end_of_query',
  'stacktrace',
  'enable_http_compression',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'cancel_http_readonly_queries_on_client_close',
  'http_zlib_compression_level',
  'http_response_compression_method',
  'http_native_compression_disable_checksumming_on_decompress',
  'http_response_buffer_size',
  'http_wait_end_of_query',
  'add_http_cors_header',
]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A ClickHouse string literal whose content is exactly `s`. */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export type Plan = {
  /** Statements run on the request's own connection before the query: settings, parameters, database. */
  prelude: string[];
  /** The statement: the `query` parameter and the body, joined by a newline, as ClickHouse does. */
  sql: string;
  format: string;
  queryId: string;
  /** The whole result is computed before the response starts (wait_end_of_query=1). */
  waitEnd: boolean;
  compress: boolean;
};

export type RequestParts = {
  method: string;
  params: URLSearchParams;
  /** Extra `query`/`param_*` fields from a multipart/form-data body. */
  form?: Map<string, string>;
  body: string;
  database?: string;
  queryId: string;
};

export function planRequest(r: RequestParts): Plan {
  // The embedded engine runs `1 + 1` as a SELECT; a server refuses it, and so does this endpoint.
  const prelude: string[] = ['SET implicit_select = 0'];
  const params = new Map<string, string>();
  let query = r.params.get('query') ?? '';
  for (const [k, v] of r.form ?? []) {
    if (k === 'query') query = v;
    else if (k.startsWith('param_')) params.set(k.slice(6), v);
  }
  const settings: [string, string][] = [];
  for (const [k, v] of r.params) {
    if (k.startsWith('param_')) params.set(k.slice(6), v);
    else if (!HTTP_PARAMS.has(k)) settings.push([k, v]);
  }
  if (r.params.get('decompress') === '1') {
    throw exception(
      'NOT_IMPLEMENTED',
      'ClickHouse native compression of the request (decompress=1) is not supported; use Content-Encoding',
    );
  }
  for (const [k, v] of settings) {
    if (!NAME.test(k)) throw exception('UNKNOWN_SETTING', `Unknown setting '${k}'`);
    prelude.push(`SET ${k} = ${sqlString(v)}`);
  }
  // GET queries are read-only, as on a ClickHouse server.
  if (r.method === 'GET') prelude.push('SET readonly = 2');
  for (const [k, v] of params) {
    if (!NAME.test(k)) throw exception('BAD_REQUEST_PARAMETER', `Invalid query parameter name '${k}'`);
    // The value stays in ClickHouse's escaped text form; the engine parses it for the declared type.
    prelude.push(`SET param_${k} = ${sqlString(v)}`);
  }
  const database = r.database ?? r.params.get('database') ?? undefined;
  if (database) prelude.push(`USE ${quoteIdentifier(database)}`);
  const sql = query && r.body ? `${query}\n${r.body}` : query || r.body;
  if (!sql.trim()) throw exception('SYNTAX_ERROR', 'Empty query');
  return {
    prelude,
    sql,
    format: r.params.get('default_format') || 'TabSeparated',
    queryId: r.queryId,
    waitEnd: r.params.get('wait_end_of_query') === '1',
    compress: r.params.get('enable_http_compression') === '1',
  };
}

export function quoteIdentifier(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

const LEADING = /^(?:\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/|\()*/;

/** Statements whose result is rows, streamed back as the engine produces them. */
export function returnsRows(sql: string): boolean {
  return /^(SELECT|WITH|SHOW|DESC|DESCRIBE|EXPLAIN|EXISTS)\b/i.test(sql.replace(LEADING, ''));
}

/** The format the response is in: a trailing FORMAT clause, or the default. */
export function effectiveFormat(sql: string, fallback: string): string {
  if (/^\s*INSERT\b/i.test(sql.replace(LEADING, ''))) return fallback;
  return /\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*$/i.exec(sql)?.[1] ?? fallback;
}

export type RawInsert = { table: string; columns?: string[]; format: string; data: string };

const RAW_FORMATS = new Set([
  'JSONEachRow',
  'JSONCompactEachRow',
  'TSV',
  'TabSeparated',
  'TSVWithNames',
  'TabSeparatedWithNames',
  'CSV',
  'CSVWithNames',
]);

/**
 * `INSERT INTO t [(a, b)] FORMAT X` followed by its data, in a text format the engine can take as
 * raw bytes; anything else (INSERT … SELECT, VALUES, other formats) runs as a statement.
 */
export function rawInsert(sql: string): RawInsert | undefined {
  const m = /^\s*INSERT\s+INTO\s+([A-Za-z0-9_.]+)\s*(?:\(([^)]*)\))?\s*FORMAT\s+([A-Za-z]+)[ \t]*\r?\n/i.exec(
    sql,
  );
  if (!m || !RAW_FORMATS.has(m[3] as string)) return undefined;
  let columns: string[] | undefined;
  if (m[2] !== undefined) {
    columns = m[2].split(',').map((c) => c.trim().replace(/^`(.*)`$/, '$1'));
    if (!columns.every((c) => NAME.test(c))) return undefined;
  }
  const table = m[1] as string;
  if (!/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$/.test(table)) return undefined;
  return { table, columns, format: m[3] as string, data: sql.slice(m[0].length) };
}

/** The exception an engine error stands for (chdb errors carry ClickHouse's text). */
export function toException(err: unknown): ClickHouseException {
  if (err instanceof ClickHouseException) return err;
  const text = err instanceof Error ? err.message : String(err);
  const m =
    /Code: (\d+)\. DB::Exception: ([\s\S]*?)\s*\(([A-Z0-9_]*[A-Z]{3}[A-Z0-9_]*)\)\s*(?:\(version [^)]*\)\s*)?$/.exec(
      text,
    );
  if (m) return new ClickHouseException(Number(m[1]), m[3] as string, (m[2] as string).replace(/\.$/, ''));
  return new ClickHouseException(CODES.STD_EXCEPTION, 'STD_EXCEPTION', text);
}

export function exceptionText(e: ClickHouseException, version: string): string {
  return `Code: ${e.code}. DB::Exception: ${e.message}. (${e.type}) (version ${version})`;
}

// ClickHouse's mapping of exception to HTTP status (src/Server/HTTPHandler.cpp).
const BAD_REQUEST = new Set([
  'BAD_ARGUMENTS',
  'CANNOT_COMPILE_REGEXP',
  'CANNOT_PARSE_TEXT',
  'CANNOT_PARSE_ESCAPE_SEQUENCE',
  'CANNOT_PARSE_QUOTED_STRING',
  'CANNOT_PARSE_DATE',
  'CANNOT_PARSE_DATETIME',
  'CANNOT_PARSE_NUMBER',
  'CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING',
  'CANNOT_PARSE_IPV4',
  'CANNOT_PARSE_IPV6',
  'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
  'CANNOT_PARSE_UUID',
  'DUPLICATE_COLUMN',
  'ILLEGAL_COLUMN',
  'UNKNOWN_ELEMENT_IN_AST',
  'UNKNOWN_TYPE_OF_AST_NODE',
  'THERE_IS_NO_COLUMN',
  'TOO_DEEP_AST',
  'TOO_BIG_AST',
  'UNEXPECTED_AST_STRUCTURE',
  'SYNTAX_ERROR',
  'INCORRECT_DATA',
  'TYPE_MISMATCH',
  'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE',
  'UNKNOWN_QUERY_PARAMETER',
  'BAD_REQUEST_PARAMETER',
  'CANNOT_DECOMPRESS',
]);
const NOT_FOUND = new Set([
  'UNKNOWN_TABLE',
  'UNKNOWN_FUNCTION',
  'UNKNOWN_IDENTIFIER',
  'UNKNOWN_TYPE',
  'UNKNOWN_STORAGE',
  'UNKNOWN_DATABASE',
  'UNKNOWN_SETTING',
  'UNKNOWN_DIRECTION_OF_SORTING',
  'UNKNOWN_AGGREGATE_FUNCTION',
  'UNKNOWN_FORMAT',
  'UNKNOWN_DATABASE_ENGINE',
  'UNKNOWN_TYPE_OF_QUERY',
  'UNKNOWN_ROLE',
]);

export function httpStatus(e: ClickHouseException): number {
  if (e.type === 'REQUIRED_PASSWORD') return 401;
  if (e.type === 'AUTHENTICATION_FAILED' || e.type === 'UNKNOWN_USER' || e.type === 'WRONG_PASSWORD')
    return 403;
  if (BAD_REQUEST.has(e.type)) return 400;
  if (NOT_FOUND.has(e.type)) return 404;
  if (e.type === 'QUERY_IS_TOO_LARGE') return 413;
  if (e.type === 'NOT_IMPLEMENTED') return 501;
  if (e.type === 'TIMEOUT_EXCEEDED') return 408;
  return 500;
}

const CONTENT_TYPES: [RegExp, string][] = [
  [
    /^JSON(EachRow|Lines|StringsEachRow|CompactEachRow|CompactStringsEachRow)/i,
    'application/x-ndjson; charset=UTF-8',
  ],
  [/^JSON/i, 'application/json; charset=UTF-8'],
  [/^(TabSeparated|TSV)/i, 'text/tab-separated-values; charset=UTF-8'],
  [/^CSV/i, 'text/csv; charset=UTF-8; header=absent'],
  [/^(Arrow|ArrowStream|Parquet|Native|RowBinary|ORC|Avro)/i, 'application/octet-stream'],
];

export function contentType(format: string): string {
  return CONTENT_TYPES.find(([re]) => re.test(format))?.[1] ?? 'text/plain; charset=UTF-8';
}

/**
 * The tail ClickHouse (25.11+) appends when a query fails after the response has started; the
 * client recognises it by the tag sent in X-ClickHouse-Exception-Tag.
 */
export function streamedException(text: string, tag: string): Buffer {
  const msg = Buffer.from(`${text}\n`);
  return Buffer.concat([
    Buffer.from(`\r\n__exception__\r\n${tag}\r\n`),
    msg,
    Buffer.from(`${msg.length} ${tag}\r\n__exception__\r\n`),
  ]);
}
