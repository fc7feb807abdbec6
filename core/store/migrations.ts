import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Store } from './client.ts';

// Numbered, forward-only SQL migrations with a ledger of checksums. A migration file that was
// applied and then edited stops start-up: the schema would no longer match the files.

export const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url).pathname;

export type Migration = { version: number; name: string; sql: string; checksum: string };

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (f) => {
      const sql = await readFile(join(dir, f), 'utf8');
      return {
        version: Number(f.slice(0, 4)),
        name: f,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    }),
  );
}

/** Expands the macros a migration may use, for a single node or a cluster. */
export function render(sql: string, store: Pick<Store, 'database' | 'cluster'>): string[] {
  const onCluster = store.cluster ? `ON CLUSTER '${store.cluster}'` : '';
  const out = sql
    .replace(/\$\{DB\}/g, store.database)
    .replace(/\$\{ON_CLUSTER\}/g, onCluster)
    .replace(/\$\{ENGINE:(\w*MergeTree)(?:\(([^)]*)\))?\}/g, (_, engine: string, args?: string) => {
      if (!store.cluster) return `${engine}${args ? `(${args})` : ''}`;
      const path = `'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'`;
      return `Replicated${engine}(${path}${args ? `, ${args}` : ''})`;
    });
  // Statements end with a semicolon at the end of a line; comments are dropped.
  return out
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean);
}

export async function migrate(
  store: Store,
  logger: Logger,
  dir = MIGRATIONS_DIR,
): Promise<{ applied: string[] }> {
  const log = logger.child({ component: 'migrations' });
  const { client, database } = store;
  const onCluster = store.cluster ? `ON CLUSTER '${store.cluster}'` : '';
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database} ${onCluster}` });
  const ledgerEngine = render('${ENGINE:ReplacingMergeTree}', store)[0];
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${database}.schema_migrations ${onCluster} (
      version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')
    ) ENGINE = ${ledgerEngine} ORDER BY version`,
  });
  const rs = await client.query({
    query: `SELECT version, name, checksum FROM ${database}.schema_migrations FINAL ORDER BY version`,
    format: 'JSONEachRow',
  });
  const done = new Map(
    (await rs.json<{ version: number; name: string; checksum: string }>()).map((r) => [r.version, r]),
  );
  const applied: string[] = [];
  for (const m of await loadMigrations(dir)) {
    const prev = done.get(m.version);
    if (prev) {
      if (prev.checksum !== m.checksum) {
        throw new ParleyError(
          'PARLEY_ERR_MIGRATION_CHANGED',
          `migration ${m.name} was applied with checksum ${prev.checksum.slice(0, 12)} but the file now has ${m.checksum.slice(0, 12)}; migrations are forward-only: restore the file and add a new migration instead`,
        );
      }
      continue;
    }
    for (const statement of render(m.sql, store)) await client.command({ query: statement });
    await client.insert({
      table: `${database}.schema_migrations`,
      values: [
        { version: m.version, name: m.name, checksum: m.checksum, applied_at: new Date().toISOString() },
      ],
      format: 'JSONEachRow',
    });
    log.info({ migration: m.name }, 'applied migration');
    applied.push(m.name);
  }
  return { applied };
}
