import { randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { Session, version } from 'chdb';
import type { Logger } from '../../core/log.ts';
import {
  type ClickHouseException,
  contentType,
  effectiveFormat,
  exception,
  exceptionText,
  httpStatus,
  type Plan,
  planRequest,
  quoteIdentifier,
  rawInsert,
  returnsRows,
  streamedException,
  toException,
} from './protocol.ts';

// `parley dev-clickhouse`: ClickHouse's HTTP interface over the embedded engine, so that several
// Parley processes on one machine can share one engine through @clickhouse/client, as they would
// share a ClickHouse server. For development only: production runs a real ClickHouse server.

export type DevClickHouseOptions = {
  /** The engine's data directory (the embedded store's `<dataDir>/clickhouse`). */
  path: string;
  host?: string;
  port?: number;
  /** Created at start, like the server image's CLICKHOUSE_DB. */
  database?: string;
  /** When set, requests must authenticate as this user (Basic auth, X-ClickHouse-* headers or URL). */
  auth?: { user: string; password: string };
  /** Requests run at once; more wait their turn. */
  concurrency?: number;
  logger: Logger;
};

export type DevClickHouse = { url: string; close(): Promise<void> };

const VERSION = version().libchdb.replace(/"/g, '');

export async function startDevClickHouse(opts: DevClickHouseOptions): Promise<DevClickHouse> {
  const log = opts.logger.child({ component: 'dev-clickhouse' });
  const path = resolve(opts.path);
  await mkdir(path, { recursive: true });
  // Holds the engine open for the server's life; every request gets its own connection so that
  // its settings, parameters and current database are its own, as on a server.
  const anchor = new Session(path);
  const timezone = (await anchor.queryAsync('SELECT timezone()', { format: 'TSVRaw' })).text().trim();
  if (opts.database)
    await anchor.queryAsync(`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(opts.database)}`);
  const gate = semaphore(opts.concurrency ?? 4);

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, toException(err));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 10_000;

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (
      url.pathname === '/ping' ||
      (url.pathname === '/' && req.method === 'GET' && !url.searchParams.has('query'))
    ) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    if (url.pathname !== '/' || (req.method !== 'GET' && req.method !== 'POST')) {
      res
        .writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' })
        .end(`There is no handle ${url.pathname}\n\nUse / or /ping for health checks.\n`);
      req.resume();
      return;
    }
    const queryId = url.searchParams.get('query_id') || randomUUID();
    res.setHeader('X-ClickHouse-Query-Id', queryId);
    res.setHeader('X-ClickHouse-Server-Display-Name', 'parley-dev-clickhouse');
    res.setHeader('X-ClickHouse-Timezone', timezone);
    let plan: Plan;
    try {
      authenticate(req, url.searchParams, opts.auth);
      const { body, form } = await readBody(req);
      const database = header(req, 'x-clickhouse-database');
      plan = planRequest({ method: req.method, params: url.searchParams, form, body, database, queryId });
    } catch (err) {
      req.resume();
      return sendError(res, toException(err));
    }
    const release = await gate();
    const started = process.hrtime.bigint();
    const session = new Session(path);
    try {
      if (plan.prelude.length) await session.queryAsync(plan.prelude.join(';\n'), { format: 'TSV' });
      await run(session, plan, req, res, started);
    } catch (err) {
      const e = toException(err);
      log.debug({ err: e.message, code: e.code, queryId }, 'query failed');
      if (!res.headersSent) sendError(res, e);
      else res.destroy();
    } finally {
      session.close();
      release();
    }
  }

  async function run(
    session: Session,
    plan: Plan,
    req: IncomingMessage,
    res: ServerResponse,
    started: bigint,
  ) {
    const format = effectiveFormat(plan.sql, plan.format);
    const insert = rawInsert(plan.sql);
    if (insert) {
      const r = await session.insert({
        table: insert.table,
        columns: insert.columns,
        format: insert.format as 'CSV',
        values: Buffer.from(insert.data),
      });
      const summary = {
        written_rows: r.rowsWritten,
        written_bytes: r.bytesWritten,
        read_rows: r.rowsWritten,
        read_bytes: r.bytesSent,
      };
      return respond(req, res, plan, format, summary, started, Readable.from([]));
    }
    if (!returnsRows(plan.sql) || plan.waitEnd) {
      const r = await session.queryAsync(plan.sql, { format });
      const summary = {
        read_rows: r.rowsRead,
        read_bytes: r.bytesRead,
        result_rows: r.rowsRead,
        result_bytes: r.bytes().length,
      };
      return respond(req, res, plan, format, summary, started, Readable.from([Buffer.from(r.bytes())]));
    }
    // Rows stream back as the engine makes them. The first chunk is awaited before the response
    // starts, so that an error in planning or in the first block still gets its HTTP status.
    const stream = session.queryStream(plan.sql, { format });
    const it = stream[Symbol.asyncIterator]();
    // The engine must not be asked to close the connection while it is fetching a block (that
    // aborts the engine), so the block in flight is always awaited, even when the client left.
    let pending: Promise<IteratorResult<{ raw(): Uint8Array }>> | undefined;
    const next = () => {
      pending = it.next();
      return pending;
    };
    try {
      const first = await next();
      const tag = randomUUID().replace(/-/g, '').slice(0, 16);
      res.setHeader('X-ClickHouse-Exception-Tag', tag);
      async function* chunks() {
        try {
          if (!first.done) yield Buffer.from(first.value.raw());
          for (let n = await next(); !n.done; n = await next()) yield Buffer.from(n.value.raw());
        } catch (err) {
          yield streamedException(exceptionText(toException(err), VERSION), tag);
        }
      }
      return await respond(req, res, plan, format, {}, started, Readable.from(chunks()));
    } finally {
      await pending?.catch(() => {});
      stream.cancel();
    }
  }

  async function respond(
    req: IncomingMessage,
    res: ServerResponse,
    plan: Plan,
    format: string,
    summary: Record<string, number>,
    started: bigint,
    body: Readable,
  ) {
    const encoding = plan.compress ? pickEncoding(header(req, 'accept-encoding')) : undefined;
    const elapsed = String(process.hrtime.bigint() - started);
    const full = {
      read_rows: 0,
      read_bytes: 0,
      written_rows: 0,
      written_bytes: 0,
      total_rows_to_read: 0,
      result_rows: 0,
      result_bytes: 0,
      ...summary,
    };
    res.writeHead(200, {
      'Content-Type': contentType(format),
      'X-ClickHouse-Format': format,
      'X-ClickHouse-Summary': JSON.stringify({
        ...Object.fromEntries(Object.entries(full).map(([k, v]) => [k, String(v)])),
        elapsed_ns: elapsed,
      }),
      ...(encoding ? { 'Content-Encoding': encoding } : {}),
    });
    if (encoding) await pipeline(body, compressor(encoding), res);
    else await pipeline(body, res);
  }

  function sendError(res: ServerResponse, e: ClickHouseException) {
    res.writeHead(httpStatus(e), {
      'Content-Type': 'text/plain; charset=UTF-8',
      'X-ClickHouse-Exception-Code': String(e.code),
    });
    res.end(`${exceptionText(e, VERSION)}\n`);
  }

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 8123, opts.host ?? '127.0.0.1', () => ok());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info({ url, path, version: VERSION }, 'dev-clickhouse listening');
  return {
    url,
    async close() {
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeIdleConnections();
        // Clients that keep their connections busy get 10 s to finish.
        setTimeout(() => server.closeAllConnections(), 10_000).unref();
      });
      // Requests still running hold the gate; wait for them before the engine is released.
      await gate.drain();
      anchor.close();
    },
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function authenticate(
  req: IncomingMessage,
  params: URLSearchParams,
  auth?: { user: string; password: string },
) {
  let user = header(req, 'x-clickhouse-user') ?? params.get('user') ?? undefined;
  let password = header(req, 'x-clickhouse-key') ?? params.get('password') ?? undefined;
  const basic = /^Basic\s+(.+)$/i.exec(header(req, 'authorization') ?? '');
  if (basic) {
    const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    user = i < 0 ? decoded : decoded.slice(0, i);
    password = i < 0 ? '' : decoded.slice(i + 1);
  }
  if (!auth) return;
  const same = (a: string, b: string) =>
    a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
  if (!same(user ?? 'default', auth.user) || !same(password ?? '', auth.password)) {
    throw exception(
      'AUTHENTICATION_FAILED',
      `${user ?? 'default'}: Authentication failed: password is incorrect, or there is no user with such name`,
    );
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

async function readBody(req: IncomingMessage): Promise<{ body: string; form?: Map<string, string> }> {
  const encoding = (header(req, 'content-encoding') ?? '').trim().toLowerCase();
  let source: NodeJS.ReadableStream = req;
  if (encoding && encoding !== 'identity') source = req.pipe(decompressor(encoding));
  const parts: Buffer[] = [];
  try {
    for await (const chunk of source) parts.push(chunk as Buffer);
  } catch (err) {
    throw exception(
      'CANNOT_DECOMPRESS',
      `Cannot decompress the request body (${encoding}): ${(err as Error).message}`,
    );
  }
  const raw = Buffer.concat(parts);
  const type = header(req, 'content-type') ?? '';
  if (!/^multipart\/form-data/i.test(type)) {
    try {
      return { body: UTF8.decode(raw) };
    } catch {
      // The engine takes SQL and inline data as text; binary formats would be corrupted.
      throw exception(
        'NOT_IMPLEMENTED',
        'The body is not UTF-8 text: dev-clickhouse takes text formats only (JSONEachRow, CSV, TabSeparated, …), not binary ones',
      );
    }
  }
  // Query parameters too long for the URL come as form fields (use_multipart_params).
  const data = await new Response(raw, { headers: { 'content-type': type } }).formData();
  const form = new Map<string, string>();
  for (const [k, v] of data) if (typeof v === 'string') form.set(k, v);
  return { body: '', form };
}

function decompressor(encoding: string) {
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  const z = zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream };
  if (encoding === 'zstd' && z.createZstdDecompress) return z.createZstdDecompress();
  throw exception('NOT_IMPLEMENTED', `Unknown HTTP content encoding: ${encoding}`);
}

function pickEncoding(accept?: string): 'gzip' | 'deflate' | 'br' | undefined {
  const offered = (accept ?? '').split(',').map((s) => s.trim().split(';')[0]?.toLowerCase());
  return (['gzip', 'br', 'deflate'] as const).find((e) => offered.includes(e));
}

function compressor(encoding: 'gzip' | 'deflate' | 'br') {
  if (encoding === 'gzip') return zlib.createGzip({ level: 3 });
  if (encoding === 'deflate') return zlib.createDeflate({ level: 3 });
  return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } });
}

/** At most `n` holders at once; drain() resolves when none are left. */
function semaphore(n: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  const idle: (() => void)[] = [];
  const acquire = async () => {
    if (active >= n) await new Promise<void>((ok) => waiting.push(ok));
    else active++;
    return () => {
      const next = waiting.shift();
      if (next) next();
      else if (--active === 0) for (const f of idle.splice(0)) f();
    };
  };
  acquire.drain = () => (active === 0 ? Promise.resolve() : new Promise<void>((ok) => idle.push(ok)));
  return acquire;
}
