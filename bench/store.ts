import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../core/log.ts';
import { createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';

/** An embedded store on a fresh data directory with Parley's tables, for benchmarks. */
export async function benchStore(name: string) {
  const dataDir = await mkdtemp(join(tmpdir(), `parley-bench-${name}-`));
  const store = await createStore({ dataDir, clickhouse: { database: 'parley' } });
  await migrate(store, createLogger({ level: 'silent' }));
  return { store, dataDir };
}
