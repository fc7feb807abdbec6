import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import type { Config } from '../config.ts';
import { ParleyError, isParleyError } from '../errors.ts';

export type { ClickHouseClient };

/** One statement with bound parameters, as the query builders return it. */
export type Statement = { query: string; query_params?: Record<string, unknown> };

export type Store = {
  /** For statements the methods below do not cover (DDL, inserts, the migrations runner). */
  client: ClickHouseClient;
  database: string;
  cluster?: string;
  kind: 'embedded' | 'server';
  /**
   * Inserts JSON lines (JSONEachRow) given as bytes. The embedded engine takes the buffer as it
   * is, without copying it into a string; a server gets it as the body of one INSERT.
   */
  insertJsonLines(table: string, data: Buffer, settings: InsertSettings): Promise<void>;
  /** A statement's rows as objects. An unreachable or timing-out store throws STORE_UNAVAILABLE. */
  rows<T>(q: Statement): Promise<T[]>;
  /** A statement's rows one by one as they arrive, for results too large to hold at once. */
  each<T>(q: Statement): AsyncGenerator<T>;
  /** A statement's result as bytes in a ClickHouse output format (e.g. ArrowStream), streamed. */
  stream(q: Statement & { format: string; settings?: ClickHouseSettings }): Promise<Readable>;
  /**
   * Inserts tab-separated lines (ClickHouse's TabSeparated, escapes and all) into the named
   * columns, the others taking their defaults: the engine parses them several times faster than
   * JSON lines.
   */
  insertTsv(table: string, columns: readonly string[], data: Buffer, settings: InsertSettings): Promise<void>;
  close(): Promise<void>;
};

type ClickHouseSettings = NonNullable<Parameters<ClickHouseClient['exec']>[0]['clickhouse_settings']>;

type InsertSettings = Record<string, string | number | boolean>;

/**
 * One client for either store: the embedded engine under <dataDir>/clickhouse when no server URL
 * is configured, a ClickHouse server over HTTP otherwise. Callers cannot tell them apart.
 */
export async function createStore(config: Pick<Config, 'clickhouse' | 'dataDir'>): Promise<Store> {
  const { url, database, cluster, timeoutMs = 30_000 } = config.clickhouse;
  const settings = {
    date_time_input_format: 'best_effort' as const,
    // Reads see inserts at once; deduplication on event_id is done by queries (FINAL).
    output_format_json_quote_64bit_integers: 0 as const,
  };
  if (url) {
    const u = new URL(url);
    const db = u.pathname.replace(/^\//, '') || database;
    u.pathname = '/';
    const server = createClient({
      url: u.toString(),
      username: decodeURIComponent(u.username) || undefined,
      password: decodeURIComponent(u.password) || undefined,
      // No default database: every statement names its tables in full (as the embedded engine
      // needs), and a fresh server must be able to run CREATE DATABASE before the database exists.
      clickhouse_settings: settings,
      request_timeout: timeoutMs,
    });
    const client = guarded(server);
    const exec = async (query: string, data: Buffer, insertSettings: InsertSettings) => {
      try {
        const res = await server.exec({
          query,
          values: Readable.from([data]),
          clickhouse_settings: insertSettings,
        });
        res.stream.resume();
      } catch (err) {
        throw asOutage(err);
      }
    };
    return {
      client,
      ...reads(client, asOutage),
      database: db,
      cluster,
      kind: 'server',
      async insertJsonLines(table, data, insertSettings) {
        await exec(`INSERT INTO ${table} FORMAT JSONEachRow`, data, insertSettings);
      },
      async insertTsv(table, columns, data, insertSettings) {
        await exec(`INSERT INTO ${table} (${columns.join(', ')}) FORMAT TabSeparated`, data, insertSettings);
      },
      close: () => server.close(),
    };
  }
  const path = resolve(join(config.dataDir, 'clickhouse'));
  await mkdir(path, { recursive: true });
  const { createChdbConnection } = await import('chdb/connection');
  const connection = createChdbConnection({ path });
  const client = createClient({
    // biome-ignore lint/suspicious/noExplicitAny: the connection hook is typed loosely upstream
    connection: connection as any,
    database,
    clickhouse_settings: settings,
  });
  return {
    client,
    ...reads(client, (err) => err),
    database,
    cluster,
    kind: 'embedded',
    insertJsonLines: (table, data, insertSettings) =>
      rawInsert(table, undefined, data, 'JSONEachRow', insertSettings),
    insertTsv: (table, columns, data, insertSettings) =>
      rawInsert(table, columns, data, 'TabSeparated', insertSettings),
    close: () => client.close(),
  };

  async function rawInsert(
    table: string,
    columns: readonly string[] | undefined,
    data: Buffer,
    format: 'JSONEachRow' | 'TabSeparated',
    insertSettings: InsertSettings,
  ) {
    // The engine's own parser reads the bytes in place (the client would make a string of them).
    try {
      await connection.chdb.rawInsert({ table, columns, values: data, format, settings: insertSettings });
    } catch (err) {
      // Refused data carries ClickHouse's code: given the shape isClickHouseError knows.
      const code = (err as { clickhouseCode?: unknown }).clickhouseCode;
      if (typeof code === 'number')
        throw Object.assign(new Error((err as Error).message, { cause: err }), { code: String(code) });
      throw err;
    }
  }
}

/**
 * True for an error ClickHouse itself raised (bad SQL or data), false for an outage. Checked by
 * shape: the embedded connection's errors are not instances of the client's exported class.
 */
export function isClickHouseError(err: unknown): err is Error & { code: string; type?: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^\d+$/.test(code);
}

/**
 * The store boundary: a failure to reach the store (refused or reset connection, timeout) becomes
 * STORE_UNAVAILABLE (503, retriable, Retry-After) for every caller; ClickHouse's own errors (bad
 * SQL or data) pass as they are.
 */
export function asOutage(err: unknown): unknown {
  if (isClickHouseError(err) || isParleyError(err)) return err;
  return new ParleyError('PARLEY_ERR_STORE_UNAVAILABLE', undefined, { cause: err });
}

/**
 * The typed reads every role uses instead of the raw client; `translate` maps a failure to reach
 * the store (for a server: an outage) to the error callers see, also for a result cut short.
 */
function reads(
  client: ClickHouseClient,
  translate: (err: unknown) => unknown,
): Pick<Store, 'rows' | 'each' | 'stream'> {
  return {
    async rows<T>(q: Statement) {
      const rs = await client.query({ ...q, format: 'JSONEachRow' });
      return rs.json<T>();
    },
    async *each<T>(q: Statement) {
      const rs = await client.query({ ...q, format: 'JSONEachRow' });
      try {
        for await (const batch of rs.stream()) for (const r of batch) yield r.json() as T;
      } catch (err) {
        throw translate(err);
      }
    },
    async stream({ format, settings, ...q }) {
      const { stream } = await client.exec({
        query: `${q.query}\nFORMAT ${format}`,
        query_params: q.query_params,
        clickhouse_settings: settings,
      });
      return stream instanceof Readable ? stream : Readable.from(stream as AsyncIterable<Uint8Array>);
    },
  };
}

type ResultLike = { json(): Promise<unknown>; text(): Promise<string> };

function guarded(client: ClickHouseClient): ClickHouseClient {
  const call =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    (...a: A) =>
      fn(...a).catch((err) => {
        throw asOutage(err);
      });
  const query = call(client.query.bind(client));
  return Object.assign(Object.create(client) as ClickHouseClient, {
    query: (async (params: Parameters<ClickHouseClient['query']>[0]) => {
      const rs = (await query(params)) as unknown as ResultLike;
      // The body is read after the answer's head: an outage may cut it short there too.
      const json = rs.json.bind(rs);
      const text = rs.text.bind(rs);
      rs.json = call(json);
      rs.text = call(text);
      return rs;
    }) as ClickHouseClient['query'],
    command: call(client.command.bind(client)),
    insert: call(client.insert.bind(client)) as ClickHouseClient['insert'],
    exec: call(client.exec.bind(client)),
    ping: client.ping.bind(client),
    close: client.close.bind(client),
  });
}
