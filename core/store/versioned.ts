// Definitions (segments, campaigns) are kept as versions of one row in a ReplacingMergeTree
// ordered by id: every write inserts a higher version, FINAL reads the latest, and a delete is a
// tombstone (deleted = 1) that processors can still see.

export type ListOptions = { businesses?: string[]; includeDeleted?: boolean };

/** The latest version of every row, optionally only some businesses' and without tombstones. */
export function buildVersionedListQuery(table: string, columns: string, opts: ListOptions = {}) {
  const where: string[] = [];
  const params: Record<string, unknown> = {};
  if (!opts.includeDeleted) where.push('deleted = 0');
  if (opts.businesses) {
    where.push('business_id IN {businesses:Array(String)}');
    params.businesses = opts.businesses;
  }
  return {
    query: `SELECT ${columns} FROM ${table} FINAL ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`,
    query_params: params,
  };
}

/** The latest version of one row, tombstone included. */
export function buildVersionedGetQuery(table: string, columns: string, id: string) {
  return { query: `SELECT ${columns} FROM ${table} FINAL WHERE id = {id:String}`, query_params: { id } };
}
