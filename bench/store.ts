import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../core/log.ts';
import type { Store } from '../core/store/client.ts';
import { createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';

/** An embedded store on a fresh data directory with Parley's tables, for benchmarks. */
export async function benchStore(name: string) {
  const dataDir = await mkdtemp(join(tmpdir(), `parley-bench-${name}-`));
  const store = await createStore({ dataDir, clickhouse: { database: 'parley' } });
  await migrate(store, createLogger({ level: 'silent' }));
  return { store, dataDir };
}

/**
 * A Null table `events_in` (an event's columns and its bus position) whose materialized views
 * write `events` and `event_ids`: the registry filled by the events insert, one insert for both.
 */
export async function createFanOut(store: Store): Promise<string> {
  const db = store.database;
  await store.client.command({
    query: `CREATE TABLE ${db}.events_in (event_id String, type String, occurred_at DateTime64(3, 'UTC'), business_id String, user_id String, thread_id String, channel String, props String, bus_partition UInt32, bus_offset UInt64, accepted_at DateTime64(3, 'UTC')) ENGINE = Null`,
  });
  await store.client.command({
    query: `CREATE MATERIALIZED VIEW ${db}.events_in_events TO ${db}.events AS SELECT event_id, type, occurred_at, business_id, user_id, thread_id, channel, props FROM ${db}.events_in`,
  });
  await store.client.command({
    query: `CREATE MATERIALIZED VIEW ${db}.events_in_ids TO ${db}.event_ids AS SELECT event_id, bus_partition, bus_offset, accepted_at FROM ${db}.events_in`,
  });
  return `${db}.events_in`;
}
