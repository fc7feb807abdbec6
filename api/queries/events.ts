import { ParleyError } from '../../core/errors.ts';

export type EventsQuery = {
  user_id?: string;
  type?: string;
  business_id?: string;
  /** Restricts to these businesses (a key limited to some businesses). */
  businesses?: string[];
  from?: number;
  to?: number;
  limit: number;
  cursor?: string;
};

export const encodeCursor = (ms: number, eventId: string) =>
  Buffer.from(JSON.stringify([ms, eventId])).toString('base64url');

export function decodeCursor(cursor: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {}
  throw new ParleyError('PARLEY_ERR_BAD_REQUEST', 'cursor: not a cursor this API returned');
}

/**
 * Stored events, newest first, keyset-paginated on (occurred_at, event_id). FINAL: no duplicates.
 * Only the newest rows are read and merged: a page of n events lies at or after the n-th newest
 * row's time (top_at) once the rows from top_at on hold n distinct events; when copies not merged
 * yet make them fewer, every row is read (the answer is the same either way).
 */
export function buildEventsQuery(db: string, q: EventsQuery) {
  const where: string[] = [];
  const params: Record<string, unknown> = { limit: q.limit };
  const add = (sql: string, name: string, value: unknown) => {
    if (value === undefined) return;
    where.push(sql);
    params[name] = value;
  };
  add('user_id = {user_id:String}', 'user_id', q.user_id);
  add('type = {type:String}', 'type', q.type);
  add('business_id = {business_id:String}', 'business_id', q.business_id);
  add('business_id IN {businesses:Array(String)}', 'businesses', q.businesses);
  add('occurred_at >= fromUnixTimestamp64Milli({from:Int64})', 'from', q.from);
  add('occurred_at < fromUnixTimestamp64Milli({to:Int64})', 'to', q.to);
  if (q.cursor !== undefined) {
    const [ms, id] = decodeCursor(q.cursor);
    where.push('(occurred_at, event_id) < (fromUnixTimestamp64Milli({c_ms:Int64}), {c_id:String})');
    params.c_ms = ms;
    params.c_id = id;
  }
  const filter = where.length ? where.join(' AND ') : '1';
  const query = `WITH (SELECT min(occurred_at) FROM (SELECT occurred_at FROM ${db}.events WHERE ${filter} ORDER BY occurred_at DESC LIMIT {limit:UInt32})) AS top_at,
  (SELECT uniqExact(event_id) FROM ${db}.events WHERE ${filter} AND occurred_at >= top_at) >= {limit:UInt32} AS enough
SELECT event_id, type, toUnixTimestamp64Milli(occurred_at) AS ms, business_id, user_id, thread_id, channel, props
FROM ${db}.events FINAL
PREWHERE occurred_at >= if(enough, top_at, toDateTime64(0, 3, 'UTC'))
WHERE ${filter}
ORDER BY occurred_at DESC, event_id DESC
LIMIT {limit:UInt32}`;
  return { query, query_params: params };
}
