import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouseClient, ClickHouseError, createClient } from '@clickhouse/client';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../core/log.ts';
import { createStore, type Store } from '../core/store/client.ts';
import { loadMigrations, migrate } from '../core/store/migrations.ts';
import { freePort, type ParleyProcess, spawnParley } from './helpers/parley-process.ts';

// `parley dev-clickhouse` in its own process, driven by an ordinary @clickhouse/client over HTTP.

let dir: string;
let server: ParleyProcess;
let url: string;
let client: ClickHouseClient;

async function startServer(dataDir: string, env: Record<string, string> = {}) {
  // Port 0: the server takes a free port and prints its URL.
  const p = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', '0'], {
    PARLEY_DATA_DIR: dataDir,
    ...env,
  });
  const url = await p.waitForOutput(/dev-clickhouse is listening on (http:\S+)/);
  return { p, url };
}

async function chError(p: Promise<unknown>): Promise<ClickHouseError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClickHouseError);
  return err as ClickHouseError;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-devch-'));
  ({ p: server, url } = await startServer(dir));
  client = createClient({ url });
  await client.command({ query: 'CREATE DATABASE IF NOT EXISTS t' });
  await client.command({
    query:
      "CREATE TABLE t.kv (k UInt32, s String, tags Array(String), at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY k",
  });
});

afterAll(async () => {
  await client?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('dev-clickhouse', () => {
  it('answers /ping and the client ping', async () => {
    const r = await fetch(`${url}/ping`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('Ok.\n');
    expect(await client.ping()).toEqual({ success: true });
    expect((await client.ping({ select: true })).success).toBe(true);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
  });

  it('inserts JSONEachRow with and without request compression, and reports what it wrote', async () => {
    const rows = Array.from({ length: 500 }, (_, i) => ({
      k: i,
      s: `s${i}`,
      tags: [`t${i % 3}`],
      at: '2026-03-04 10:15:30.123',
    }));
    const plain = await client.insert({ table: 't.kv', values: rows.slice(0, 250), format: 'JSONEachRow' });
    expect(plain.summary?.written_rows).toBe('250');
    const gz = createClient({ url, compression: { request: true, response: true } });
    try {
      await gz.insert({ table: 't.kv', values: rows.slice(250), format: 'JSONEachRow' });
      const rs = await gz.query({
        query: 'SELECT count() AS n, max(k) AS m FROM t.kv',
        format: 'JSONEachRow',
      });
      expect(rs.response_headers['content-encoding']).toBe('gzip');
      expect(await rs.json()).toEqual([{ n: 500, m: 499 }]);
    } finally {
      await gz.close();
    }
  });

  it('binds query parameters server-side, whatever the value holds', async () => {
    const tricky = "it's a \\ back\tslash\nand 'quotes'";
    await client.insert({
      table: 't.kv',
      values: [{ k: 10_000, s: tricky, tags: ["a'b", 'c\\d'], at: '2026-01-01 00:00:00.000' }],
      format: 'JSONEachRow',
    });
    const rs = await client.query({
      query:
        'SELECT k, s, tags FROM t.kv WHERE s = {s:String} AND has(tags, {tag:String}) AND tags = {tags:Array(String)} AND at >= {from:DateTime64(3)}',
      query_params: { s: tricky, tag: "a'b", tags: ["a'b", 'c\\d'], from: new Date('2025-12-31T00:00:00Z') },
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ k: 10_000, s: tricky, tags: ["a'b", 'c\\d'] }]);
    const none = await client.query({
      query: 'SELECT count() AS n FROM t.kv WHERE s = {s:String}',
      query_params: { s: "x' OR 1=1 --" },
      format: 'JSONEachRow',
    });
    expect(await none.json()).toEqual([{ n: 0 }]);
    const nul = await client.query({
      query: 'SELECT {v:Nullable(String)} IS NULL AS isnull',
      query_params: { v: null },
      format: 'JSONEachRow',
    });
    expect(await nul.json()).toEqual([{ isnull: 1 }]);
  });

  it('fails a query whose parameter is missing, and never lets one request see another request’s parameters or settings', async () => {
    await client.query({ query: 'SELECT {p:UInt8}', query_params: { p: 1 } }).then((r) => r.text());
    const e = await chError(client.query({ query: 'SELECT {p:UInt8}' }));
    expect(e.code).toBe('456');
    expect(e.type).toBe('UNKNOWN_QUERY_PARAMETER');
    const set = await client.query({
      query: "SELECT getSetting('max_threads') AS t",
      format: 'JSONEachRow',
      clickhouse_settings: { max_threads: 1 },
    });
    expect(await set.json()).toEqual([{ t: 1 }]);
    const after = await client.query({
      query: "SELECT getSetting('max_threads') AS t",
      format: 'JSONEachRow',
    });
    expect((await after.json<{ t: number }>())[0]?.t).not.toBe(1);
  });

  it('answers in the requested formats', async () => {
    const json = await client.query({ query: 'SELECT number AS n FROM numbers(3)', format: 'JSON' });
    const doc = await json.json<{ n: number }>();
    expect(doc.data).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(doc.rows).toBe(3);
    const compact = await client.query({
      query: 'SELECT number, toString(number) FROM numbers(2)',
      format: 'JSONCompactEachRow',
    });
    expect(await compact.json()).toEqual([
      [0, '0'],
      [1, '1'],
    ]);
    const tsv = await client.query({
      query: 'SELECT number, toString(number * 2) FROM numbers(2)',
      format: 'TabSeparated',
    });
    expect(await tsv.text()).toBe('0\t0\n1\t2\n');
    const csv = await client.query({ query: "SELECT 'a,b' AS x, 1 AS y", format: 'CSV' });
    expect(await csv.text()).toBe('"a,b",1\n');
    const clause = await client.exec({ query: 'SELECT 7 AS x FORMAT JSONEachRow' });
    expect(clause.response_headers['x-clickhouse-format']).toBe('JSONEachRow');
    let text = '';
    for await (const c of clause.stream) text += c;
    expect(text).toBe('{"x":7}\n');
    const arrow = await client.exec({
      query: 'SELECT number AS n, toString(number) AS s FROM numbers(5) FORMAT ArrowStream',
      clickhouse_settings: { output_format_arrow_compression_method: 'none' },
    });
    const parts: Buffer[] = [];
    for await (const c of arrow.stream) parts.push(c as Buffer);
    const table = tableFromIPC(Buffer.concat(parts));
    expect(table.numRows).toBe(5);
    expect(String(table.getChild('s')?.get(4))).toBe('4');
  });

  it('streams large results row by row', async () => {
    const rs = await client.query({
      query: 'SELECT number AS n FROM numbers({count:UInt32})',
      query_params: { count: 300_000 },
      format: 'JSONEachRow',
    });
    let rows = 0;
    let sum = 0;
    let chunks = 0;
    for await (const batch of rs.stream<{ n: number }>()) {
      chunks++;
      for (const r of batch) {
        rows++;
        sum += Number(r.json().n);
      }
    }
    expect(rows).toBe(300_000);
    expect(sum).toBe((300_000 * 299_999) / 2);
    expect(chunks).toBeGreaterThan(1);
  });

  it('turns errors into ClickHouseError with ClickHouse’s code, type and status', async () => {
    const syntax = await chError(client.query({ query: 'SELECT * FORM t.kv' }));
    expect(syntax.code).toBe('62');
    expect(syntax.type).toBe('SYNTAX_ERROR');
    const table = await chError(client.query({ query: 'SELECT * FROM t.missing' }));
    expect(table.code).toBe('60');
    expect(table.type).toBe('UNKNOWN_TABLE');
    const insert = await chError(
      client.insert({ table: 't.kv', values: [{ k: 'not a number' }], format: 'JSONEachRow' }),
    );
    expect(insert.type).toBe('CANNOT_PARSE_INPUT_ASSERTION_FAILED');
    const raw = await fetch(`${url}/?query=${encodeURIComponent('SELECT * FROM nowhere.t')}`);
    expect(raw.status).toBe(404);
    expect(raw.headers.get('x-clickhouse-exception-code')).toBe('81');
    expect(await raw.text()).toMatch(
      /^Code: 81\. DB::Exception: .*\(UNKNOWN_DATABASE\) \(version [\d.]+\)\n$/s,
    );
    // Not a statement on a server (the embedded engine alone would take it as a SELECT).
    expect((await chError(client.query({ query: '1 + 1' }))).code).toBe('62');
    const binary = await fetch(`${url}/?query=${encodeURIComponent('INSERT INTO t.kv FORMAT RowBinary')}`, {
      method: 'POST',
      body: Buffer.from([0xff, 0xfe, 0x00, 0x80]),
    });
    expect(binary.status).toBe(501);
    expect(await binary.text()).toMatch(/^Code: 48\. DB::Exception: The body is not UTF-8 text/);
    const setting = await chError(
      client.query({ query: 'SELECT 1', clickhouse_settings: { no_such_setting: 1 } as never }),
    );
    expect(setting.type).toBe('UNKNOWN_SETTING');
  });

  it('reports an error that happens after rows have started streaming', async () => {
    // Small blocks on one thread, so that rows are on their way before the failing one is reached.
    const rs = await client.query({
      query: 'SELECT throwIf(number = 250000) AS x FROM numbers(300000)',
      format: 'JSONEachRow',
      clickhouse_settings: { max_block_size: '1000', max_threads: 1 },
    });
    let rows = 0;
    const err = await (async () => {
      for await (const batch of rs.stream()) rows += batch.length;
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClickHouseError);
    expect((err as ClickHouseError).code).toBe('395');
    expect(rows).toBeGreaterThan(0);
    expect(rows).toBeLessThan(300_000);
  });

  it('keeps serving after clients walk away in the middle of a stream', async () => {
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const rs = await client.query({
        query: 'SELECT number, repeat(toString(number), 20) AS s FROM numbers(5000000)',
        format: 'JSONEachRow',
        abort_signal: ac.signal,
        clickhouse_settings: { max_block_size: '1000' },
      });
      const it = rs.stream()[Symbol.asyncIterator]();
      expect((await it.next()).done).toBe(false);
      ac.abort();
      await it.return?.().catch(() => {});
    }
    const after = await client.query({ query: 'SELECT count() AS n FROM t.kv', format: 'JSONEachRow' });
    expect(await after.json()).toHaveLength(1);
    expect(await client.ping()).toEqual({ success: true });
    expect(server.child.exitCode).toBeNull();
  });

  it('refuses GET requests that write, as a server does', async () => {
    const r = await fetch(
      `${url}/?query=${encodeURIComponent('CREATE TABLE t.x (a UInt8) ENGINE = Memory')}`,
    );
    expect(r.status).toBe(500);
    expect(r.headers.get('x-clickhouse-exception-code')).toBe('164');
    const ok = await fetch(`${url}/?query=${encodeURIComponent('SELECT 1')}`);
    expect(await ok.text()).toBe('1\n');
  });

  it('serves concurrent requests', async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        client
          .query({ query: 'SELECT {i:UInt32} * 2 AS v', query_params: { i }, format: 'JSONEachRow' })
          .then((r) => r.json<{ v: number }>()),
      ),
    );
    expect(results.map((r) => r[0]?.v)).toEqual(Array.from({ length: 16 }, (_, i) => i * 2));
  });

  it("runs Parley's store and migrations through PARLEY_CLICKHOUSE_URL", async () => {
    const logger = createLogger({ level: 'silent' });
    const store: Store = await createStore({
      clickhouse: { url: `${url}/parley`, database: 'parley' },
      dataDir: join(dir, 'unused'),
    });
    try {
      expect(store.kind).toBe('server');
      const first = await migrate(store, logger);
      expect(first.applied).toEqual((await loadMigrations()).map((m) => m.name));
      expect((await migrate(store, logger)).applied).toEqual([]);
      const event = {
        event_id: 'e1',
        type: 'message.received',
        occurred_at: '2026-03-04T10:15:30.123Z',
        business_id: 'b',
        user_id: 'u',
        thread_id: 'b_u',
        channel: 'sms',
        props: '{"value":3}',
        ingested_at: '2026-03-04T10:15:31.000Z',
      };
      await store.client.insert({
        table: `${store.database}.events`,
        values: [event, event],
        format: 'JSONEachRow',
      });
      const rs = await store.client.query({
        query: `SELECT count() AS n, any(value) AS v, any(occurred_at) AS t FROM ${store.database}.events FINAL WHERE user_id = {u:String}`,
        query_params: { u: 'u' },
        format: 'JSONEachRow',
      });
      expect(await rs.json()).toEqual([{ n: 1, v: 3, t: '2026-03-04 10:15:30.123' }]);
    } finally {
      await store.close();
    }
  });

  it('refuses a second server on the same data directory', async () => {
    const port = await freePort();
    const second = spawnParley('second', ['dev-clickhouse', '--port', String(port)], {
      PARLEY_DATA_DIR: dir,
    });
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/in use by process \d+/);
  });

  it('requires the configured password', async () => {
    const authDir = await mkdtemp(join(tmpdir(), 'parley-devch-auth-'));
    const { p, url: authUrl } = await startServer(authDir, {
      PARLEY_DEV_CLICKHOUSE_USER: 'parley',
      PARLEY_DEV_CLICKHOUSE_PASSWORD: 's3cret',
    });
    const good = createClient({ url: authUrl, username: 'parley', password: 's3cret' });
    const bad = createClient({ url: authUrl, username: 'parley', password: 'wrong' });
    try {
      expect(await (await good.query({ query: 'SELECT 1 AS one', format: 'JSONEachRow' })).json()).toEqual([
        { one: 1 },
      ]);
      const e = await chError(bad.query({ query: 'SELECT 1' }));
      expect(e.code).toBe('516');
      expect(e.type).toBe('AUTHENTICATION_FAILED');
      expect((await fetch(`${authUrl}/?query=SELECT%201`)).status).toBe(403);
    } finally {
      await good.close();
      await bad.close();
      await p.stop();
      await rm(authDir, { recursive: true, force: true });
    }
  });
});
