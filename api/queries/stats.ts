// The overview's figures: stored events per minute by type and channel, and the most active
// businesses, over the last minutes up to `to`. Pure builders; bound parameters only.

export type StatsQuery = { from: number; to: number; business_id?: string; businesses?: string[] };

function scope(q: StatsQuery) {
  const where = [
    'occurred_at >= fromUnixTimestamp64Milli({from:Int64})',
    'occurred_at < fromUnixTimestamp64Milli({to:Int64})',
  ];
  const params: Record<string, unknown> = { from: q.from, to: q.to };
  if (q.business_id !== undefined) {
    where.push('business_id = {business_id:String}');
    params.business_id = q.business_id;
  }
  if (q.businesses !== undefined) {
    where.push('business_id IN {businesses:Array(String)}');
    params.businesses = q.businesses;
  }
  return { where: where.join(' AND '), params };
}

export function buildEventsPerMinuteQuery(db: string, q: StatsQuery) {
  const { where, params } = scope(q);
  return {
    query: `SELECT toUnixTimestamp(toStartOfMinute(occurred_at)) * 1000 AS minute, type, channel, count() AS events
FROM (SELECT DISTINCT event_id, occurred_at, type, channel FROM ${db}.events WHERE ${where})
GROUP BY minute, type, channel
ORDER BY minute, type, channel`,
    query_params: params,
  };
}

export function buildTopBusinessesQuery(db: string, q: StatsQuery, limit: number) {
  const { where, params } = scope(q);
  return {
    query: `SELECT business_id, uniqExact(event_id) AS events, uniqExact(user_id) AS users
FROM ${db}.events WHERE ${where}
GROUP BY business_id
ORDER BY events DESC, business_id
LIMIT {limit:UInt32}`,
    query_params: { ...params, limit },
  };
}
