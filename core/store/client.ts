import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import type { Config } from '../config.ts';

export type { ClickHouseClient };

export type Store = {
  client: ClickHouseClient;
  database: string;
  cluster?: string;
  kind: 'embedded' | 'server';
  /**
   * Inserts JSON lines (JSONEachRow) given as bytes. The embedded engine takes the buffer as it
   * is, without copying it into a string; a server gets it as the body of one INSERT.
   */
  insertJsonLines(table: string, data: Buffer, settings: InsertSettings): Promise<void>;
  close(): Promise<void>;
};

type InsertSettings = Record<string, string | number | boolean>;

/**
 * One client for either store: the embedded engine under <dataDir>/clickhouse when no server URL
 * is configured, a ClickHouse server over HTTP otherwise. Callers cannot tell them apart.
 */
export async function createStore(config: Pick<Config, 'clickhouse' | 'dataDir'>): Promise<Store> {
  const { url, database, cluster } = config.clickhouse;
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
      request_timeout: 60_000,
    });
    return {
      client: server,
      database: db,
      cluster,
      kind: 'server',
      async insertJsonLines(table, data, insertSettings) {
        const res = await server.exec({
          query: `INSERT INTO ${table} FORMAT JSONEachRow`,
          values: Readable.from([data]),
          clickhouse_settings: insertSettings,
        });
        res.stream.resume();
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
    database,
    cluster,
    kind: 'embedded',
    async insertJsonLines(table, data, insertSettings) {
      // The engine's own parser reads the bytes in place (the client would make a string of them).
      try {
        await connection.chdb.rawInsert({
          table,
          values: data,
          format: 'JSONEachRow',
          settings: insertSettings,
        });
      } catch (err) {
        // Refused data carries ClickHouse's code: given the shape isClickHouseError knows.
        const code = (err as { clickhouseCode?: unknown }).clickhouseCode;
        if (typeof code === 'number')
          throw Object.assign(new Error((err as Error).message, { cause: err }), { code: String(code) });
        throw err;
      }
    },
    close: () => client.close(),
  };
}

/**
 * True for an error ClickHouse itself raised (bad SQL or data), false for an outage. Checked by
 * shape: the embedded connection's errors are not instances of the client's exported class.
 */
export function isClickHouseError(err: unknown): err is Error & { code: string; type?: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^\d+$/.test(code);
}
