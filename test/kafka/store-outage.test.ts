import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { type Running, startParley } from '../../bin/server.ts';
import { parseConfig } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { newKey } from '../helpers/app.ts';
import { type ParleyProcess, freePort, spawnParley } from '../helpers/parley-process.ts';
import { waitFor } from '../helpers/process.ts';
import { kafkaBrokers, unique } from './env.ts';

// Store outage on Kafka mode: the ClickHouse server (`parley dev-clickhouse`) is killed while
// clients ingest. Reads answer 503 with Retry-After, never 500; ingest keeps acknowledging (the
// bus is up); once the store is back the sink catches up, and every acknowledged event is stored
// exactly once.

const brokers = kafkaBrokers();
let store: ParleyProcess | undefined;
let parley: Running | undefined;
const dirs: string[] = [];
afterAll(async () => {
  await parley?.stop();
  await store?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function startStore(dir: string, port: number) {
  const p = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', String(port)], {
    PARLEY_DATA_DIR: dir,
  });
  await p.waitForOutput(/dev-clickhouse is listening on (http:\S+)/);
  return p;
}

it('answers reads 503 while the store is down, keeps ingesting, and stores every acknowledged event once', async () => {
  const chDir = await mkdtemp(join(tmpdir(), 'parley-store-outage-ch-'));
  const dir = await mkdtemp(join(tmpdir(), 'parley-store-outage-'));
  dirs.push(chDir, dir);
  const port = await freePort();
  store = await startStore(chDir, port);
  const key = newKey('admin');
  parley = await startParley(
    parseConfig({
      PARLEY_DATA_DIR: dir,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'silent',
      PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
      PARLEY_KAFKA_BROKERS: brokers.join(','),
      PARLEY_TOPIC_PREFIX: `${unique('store-outage')}.`,
      PARLEY_TOPIC_PARTITIONS: '2',
      PARLEY_HASH_SECRET: randomBytes(16).toString('hex'),
      PARLEY_CLICKHOUSE_URL: `http://127.0.0.1:${port}/parley`,
      PARLEY_CLICKHOUSE_TIMEOUT_MS: '3000',
      PARLEY_SINK_BATCH_WAIT_MS: '20',
    }),
    { logger: createLogger({ level: 'silent' }), out: () => {} },
  );
  const url = parley.url;
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const acked = new Set<string>();
  const statuses: number[] = [];
  let seq = 0;
  let sending = true;
  const sender = (async () => {
    while (sending) {
      const batch = Array.from({ length: 20 }, () => ({
        event_id: `so-${seq++}`,
        type: 'message.received',
        occurred_at: new Date().toISOString(),
        business_id: 'b1',
        user_id: `u${seq % 13}`,
        channel: 'webchat',
      }));
      const res = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers,
        body: JSON.stringify(batch),
      }).catch(
        () => undefined, // the test is over and Parley stopped
      );
      if (!res) break;
      statuses.push(res.status);
      if (res.status === 202) for (const e of batch) acked.add(e.event_id);
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const read = () => fetch(`${url}/v1/events?limit=1000`, { headers });
  /** Every stored event id, page by page; undefined while the store cannot answer. */
  async function storedIds() {
    const ids: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const res = await fetch(`${url}/v1/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { headers });
      if (res.status !== 200) return undefined;
      const page = (await res.json()) as { events: { event_id: string }[]; next: string | null };
      ids.push(...page.events.map((e) => e.event_id));
      cursor = page.next;
    }
    return ids;
  }
  await waitFor('some events stored', async () => {
    const r = await read();
    const b = (await r.json()) as { events: unknown[] };
    if (!b.events) throw new Error(`${r.status} ${JSON.stringify(b)}`);
    return b.events.length > 0;
  });

  await store.stop('SIGKILL');
  const ackedBefore = acked.size;
  for (const [method, path, body] of [
    ['GET', '/v1/events?limit=10', undefined],
    ['GET', '/v1/segments', undefined],
    [
      'POST',
      '/v1/reports/funnel',
      {
        steps: [{ type: 'message.received' }, { type: 'order.placed' }],
        window_seconds: 60,
        from: '2026-01-01T00:00:00Z',
        to: '2027-01-01T00:00:00Z',
      },
    ],
  ] as const) {
    const res = await fetch(`${url}${path}`, { method, headers, body: body && JSON.stringify(body) });
    expect(res.status, path).toBe(503);
    expect(res.headers.get('retry-after'), path).toBe('1');
    expect(((await res.json()) as { error: string }).error, path).toBe('PARLEY_ERR_STORE_UNAVAILABLE');
  }
  await waitFor(
    'ingest to keep acknowledging while the store is down',
    async () => acked.size >= ackedBefore + 100,
    20_000,
  );
  expect(statuses.filter((s) => s >= 500)).toEqual([]);

  store = await startStore(chDir, port);
  await new Promise((r) => setTimeout(r, 1000));
  sending = false;
  await sender;
  const ids = await waitFor(
    'every acknowledged event stored',
    async () => {
      const got = await storedIds();
      return got !== undefined && got.length >= acked.size && got;
    },
    60_000,
    250,
  );
  expect(ids.length).toBe(acked.size); // no duplicates
  expect(new Set(ids)).toEqual(acked); // no loss
}, 180_000);
