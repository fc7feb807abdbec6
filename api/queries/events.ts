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

export const encodeCursor = (ms: number, eventId: string) => Buffer.from(JSON.stringify([ms, eventId])).toString('base64url');

export function decodeCursor(cursor: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {}
  throw new ParleyError('PARLEY_ERR_BAD_REQUEST', 'cursor: not a cursor this API returned');
}

/** Stored events, newest first, keyset-paginated on (occurred_at, event_id). FINAL: no duplicates. */
export function buildEventsQuery(db: string, q: EventsQuery) {
  const where: string[] = [];
  const params: Record<string, unknown> = { limit: q.limit };
  if (q.user_id !== undefined) (where.push('user_id = {user_id:String}'), (params.user_id = q.user_id));
  if (q.type !== undefined) (where.push('type = {type:String}'), (params.type = q.type));
  if (q.business_id !== undefined) (where.push('business_id = {business_id:String}'), (params.business_id = q.business_id));
  if (q.businesses) (where.push('business_id IN {businesses:Array(String)}'), (params.businesses = q.businesses));
  if (q.from !== undefined) (where.push('occurred_at >= fromUnixTimestamp64Milli({from:Int64})'), (params.from = q.from));
  if (q.to !== undefined) (where.push('occurred_at < fromUnixTimestamp64Milli({to:Int64})'), (params.to = q.to));
  if (q.cursor !== undefined) {
    const [ms, id] = decodeCursor(q.cursor);
    where.push('(occurred_at, event_id) < (fromUnixTimestamp64Milli({c_ms:Int64}), {c_id:String})');
    params.c_ms = ms;
    params.c_id = id;
  }
  const query = `SELECT event_id, type, toUnixTimestamp64Milli(occurred_at) AS ms, business_id, user_id, thread_id, channel, props
FROM ${db}.events FINAL
${where.length ? `WHERE ${where.join(' AND ')}` : ''}
ORDER BY occurred_at DESC, event_id DESC
LIMIT {limit:UInt32}`;
  return { query, query_params: params };
}
