import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../core/log.ts';
import type { RefEvent } from '../core/reports/reference.ts';
import { type Store, createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { toRow } from '../processors/sink.ts';

// One embedded store per test file, migrated, in a fresh temp directory.

export async function openTestStore(): Promise<{ store: Store; close(): Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-reports-'));
  const store = await createStore({ dataDir, clickhouse: { database: 'parley' } });
  await migrate(store, createLogger({ level: 'silent' }));
  return {
    store,
    async close() {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export const T0 = Date.parse('2026-03-01T00:00:00.000Z');
let seq = 0;

/** A reference event with defaults; `t` in ms after T0. */
export function ev(type: string, user: string, t: number, more: Partial<RefEvent> = {}): RefEvent {
  return {
    event_id: more.event_id ?? `e${++seq}`,
    type,
    t: T0 + t,
    business_id: 'b1',
    user_id: user,
    channel: 'whatsapp',
    props: {},
    ...more,
  };
}

export async function insertEvents(store: Store, events: RefEvent[]): Promise<void> {
  if (!events.length) return;
  const values = events.map((e) =>
    toRow({
      event_id: e.event_id,
      type: e.type as 'message.received',
      occurred_at: new Date(e.t).toISOString(),
      business_id: e.business_id,
      user_id: e.user_id,
      thread_id: `${e.business_id}:${e.user_id}`,
      channel: e.channel as 'sms',
      props: e.props,
    }),
  );
  await store.client.insert({ table: `${store.database}.events`, values, format: 'JSONEachRow' });
}

export async function queryRows<T>(
  store: Store,
  q: { query: string; query_params: Record<string, unknown> },
): Promise<T[]> {
  const rs = await store.client.query({ ...q, format: 'JSONEachRow' });
  return rs.json<T>();
}
