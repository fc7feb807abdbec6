import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { type Store, createStore } from './client.ts';
import { loadMigrations, migrate, render } from './migrations.ts';

const logger = createLogger({ level: 'silent' });

describe('render', () => {
  const sql =
    'CREATE TABLE ${DB}.t ${ON_CLUSTER} (a UInt8) ENGINE = ${ENGINE:ReplacingMergeTree(v)} ORDER BY a;\n-- note\nSELECT 1;';
  it('expands macros for a single node', () => {
    expect(render(sql, { database: 'parley' })).toEqual([
      'CREATE TABLE parley.t  (a UInt8) ENGINE = ReplacingMergeTree(v) ORDER BY a',
      'SELECT 1',
    ]);
  });
  it('uses ON CLUSTER and replicated engines with a cluster', () => {
    expect(render(sql, { database: 'p', cluster: 'c1' })[0]).toBe(
      "CREATE TABLE p.t ON CLUSTER 'c1' (a UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', v) ORDER BY a",
    );
  });
});

describe('migrate', () => {
  let store: Store;
  beforeAll(async () => {
    store = await createStore({
      dataDir: await mkdtemp(join(tmpdir(), 'parley-mig-')),
      clickhouse: { database: 'mig' },
    });
  });
  afterAll(() => store.close());

  it('applies each migration once, records checksums, and refuses an edited one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-migfiles-'));
    await writeFile(
      join(dir, '0001_first.sql'),
      '-- why\nCREATE TABLE IF NOT EXISTS ${DB}.first (a UInt8) ENGINE = ${ENGINE:MergeTree} ORDER BY a;\n',
    );
    expect((await migrate(store, logger, dir)).applied).toEqual(['0001_first.sql']);
    await writeFile(
      join(dir, '0002_second.sql'),
      'CREATE TABLE IF NOT EXISTS ${DB}.second (b UInt8) ENGINE = ${ENGINE:MergeTree} ORDER BY b;\n',
    );
    expect((await migrate(store, logger, dir)).applied).toEqual(['0002_second.sql']);
    expect((await migrate(store, logger, dir)).applied).toEqual([]);

    const rs = await store.client.query({
      query: 'SELECT name, checksum FROM mig.schema_migrations FINAL ORDER BY version',
      format: 'JSONEachRow',
    });
    const ledger = await rs.json<{ name: string; checksum: string }>();
    expect(ledger.map((r) => r.name)).toEqual(['0001_first.sql', '0002_second.sql']);
    expect(ledger[0].checksum).toBe((await loadMigrations(dir))[0].checksum);

    await writeFile(
      join(dir, '0001_first.sql'),
      'CREATE TABLE IF NOT EXISTS ${DB}.first (a UInt16) ENGINE = ${ENGINE:MergeTree} ORDER BY a;\n',
    );
    await expect(migrate(store, logger, dir)).rejects.toMatchObject({
      code: 'PARLEY_ERR_MIGRATION_CHANGED',
      message: expect.stringMatching(/0001_first.sql was applied/),
    });
  });

  it("runs the project's own migrations", async () => {
    const { applied } = await migrate({ ...store, database: 'mig_project' }, logger);
    expect(applied[0]).toBe('0001_events.sql');
    const rs = await store.client.query({
      query: "SELECT name FROM system.tables WHERE database = 'mig_project' AND name = 'events'",
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toHaveLength(1);
  });
});
