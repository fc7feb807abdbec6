import type { Store } from '../store/client.ts';

// Removes a person's rows from every table that holds a user_id column: found in the schema, so
// a table added later is covered without a change here (and from the first-copy register of event
// ids, through the person's events). Per business when asked, from the tables
// that also hold a business_id.

export function buildUserTablesQuery(db: string) {
  return {
    query: `SELECT table, groupArray(name) AS columns FROM system.columns
            WHERE database = {db:String} AND name IN ('user_id', 'business_id')
              AND table IN (SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree')
            GROUP BY table HAVING has(columns, 'user_id') ORDER BY table`,
    query_params: { db },
  };
}

export function buildEraseWhere(userId: string, businessId: string | null) {
  return {
    where:
      businessId === null
        ? 'user_id = {user:String}'
        : 'user_id = {user:String} AND business_id = {business:String}',
    query_params: businessId === null ? { user: userId } : { user: userId, business: businessId },
  };
}

/** Deletes the person's rows and returns, per table, how many there were. */
export async function eraseFromTables(
  store: Store,
  userId: string,
  businessId: string | null,
): Promise<Record<string, number>> {
  const db = store.database;
  const onCluster = store.cluster ? `ON CLUSTER '${store.cluster}'` : '';
  const tables = await store.rows<{ table: string; columns: string[] }>(buildUserTablesQuery(db));
  const out: Record<string, number> = {};
  // The first-copy register (event_ids) has no user_id; its rows are found through the person's
  // events, so it is cleared before them.
  if (tables.some((t) => t.table === 'events')) {
    const { where, query_params } = buildEraseWhere(userId, businessId);
    const theirs = `event_id IN (SELECT event_id FROM ${db}.events WHERE ${where})`;
    const [{ n }] = await store.rows<{ n: number | string }>({
      query: `SELECT count() AS n FROM ${db}.event_ids WHERE ${theirs}`,
      query_params,
    });
    out.event_ids = Number(n);
    if (Number(n) > 0)
      await store.client.command({
        query: `ALTER TABLE ${db}.event_ids ${onCluster} DELETE WHERE ${theirs}`,
        query_params,
        clickhouse_settings: { mutations_sync: '2' },
      });
  }
  for (const t of tables) {
    if (businessId !== null && !t.columns.includes('business_id')) continue;
    const { where, query_params } = buildEraseWhere(userId, businessId);
    const [{ n }] = await store.rows<{ n: number | string }>({
      query: `SELECT count() AS n FROM ${db}.${t.table} WHERE ${where}`,
      query_params,
    });
    out[t.table] = Number(n);
    if (Number(n) === 0) continue;
    // A mutation rewrites the parts that hold the rows, so they are gone from disk, not masked.
    await store.client.command({
      query: `ALTER TABLE ${db}.${t.table} ${onCluster} DELETE WHERE ${where}`,
      query_params,
      clickhouse_settings: { mutations_sync: '2' },
    });
  }
  return out;
}
