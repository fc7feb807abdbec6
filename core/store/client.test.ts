import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isParleyError } from '../errors.ts';
import { type Store, createStore } from './client.ts';

// The store boundary: reads through the Store's own methods, and a server that cannot answer
// becomes STORE_UNAVAILABLE (503, retriable) for every kind of read, also when cut short.

const dirs: string[] = [];
const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<number> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  return (s.address() as AddressInfo).port;
}

async function serverStore(port: number): Promise<Store> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-store-'));
  dirs.push(dir);
  return createStore({
    dataDir: dir,
    clickhouse: { url: `http://127.0.0.1:${port}/parley`, database: 'parley', timeoutMs: 300 },
  });
}

async function unavailable(read: () => Promise<unknown>) {
  const err = await read().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isParleyError(err) && err.code).toBe('PARLEY_ERR_STORE_UNAVAILABLE');
}

const drain = async (it: AsyncIterable<unknown>) => {
  const got: unknown[] = [];
  for await (const x of it) got.push(x);
  return got;
};

describe('a ClickHouse server', () => {
  it('refusing connections: every read is STORE_UNAVAILABLE', async () => {
    const port = await serve(() => {});
    servers.pop()?.close();
    await new Promise((r) => setTimeout(r, 50));
    const store = await serverStore(port);
    await unavailable(() => store.rows({ query: 'SELECT 1' }));
    await unavailable(() => drain(store.each({ query: 'SELECT 1' })));
    await unavailable(() => store.stream({ query: 'SELECT 1', format: 'CSV' }));
    await store.close();
  });

  it('not answering within the timeout: STORE_UNAVAILABLE', async () => {
    const store = await serverStore(await serve(() => {}));
    await unavailable(() => store.rows({ query: 'SELECT 1' }));
    await store.close();
  });

  it('cutting a result short after its head: STORE_UNAVAILABLE, for rows and for each', async () => {
    const store = await serverStore(
      await serve((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"n":1}\n{"n":');
        setTimeout(() => res.socket?.destroy(), 20);
      }),
    );
    await unavailable(() => store.rows({ query: 'SELECT 1' }));
    await unavailable(() => drain(store.each({ query: 'SELECT 1' })));
    await store.close();
  });
});

describe('the embedded engine', () => {
  it('reads rows, row by row, and as a stream in a named format', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-store-'));
    dirs.push(dir);
    const store = await createStore({ dataDir: dir, clickhouse: { database: 'default' } });
    const q = { query: 'SELECT number AS n FROM numbers({k:UInt8})', query_params: { k: 3 } };
    expect(await store.rows<{ n: number }>(q)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(await drain(store.each<{ n: number }>(q))).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    const csv = Buffer.concat((await drain(await store.stream({ ...q, format: 'CSV' }))) as Buffer[]);
    expect(csv.toString()).toBe('0\n1\n2\n');
    await store.close();
  });
});
