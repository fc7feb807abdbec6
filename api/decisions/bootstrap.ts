import type { Store } from '../../core/store/client.ts';
import type { DecisionState } from './state.ts';
import { dayOf } from './types.ts';

// The stored part of the engine's start: what happened before a cutoff (an hour ago) comes from
// the events table, what happened after it from the bus. Campaign delivery (spend, served,
// clicks) is only counted from stored events before the cutoff and from bus events after it, so
// nothing counts twice and a flight longer than the bus's retention keeps its whole spend.
// Conversations, opt-outs and blocks are idempotent, so both sources may apply them.

export const BOOTSTRAP_CUTOFF_MS = 3600_000;

const CONVERSING = `('message.received', 'postback', 'referral')`;

export function buildBootstrapQueries(db: string, cutoffMs: number) {
  const params = { cutoff: cutoffMs };
  const before = 'occurred_at < fromUnixTimestamp64Milli({cutoff:Int64})';
  return {
    delivery: {
      query: `SELECT campaign_id,
  toUInt64(countIf(type = 'sponsored.served')) AS served,
  toUInt64(uniqExactIf(decision_id, type = 'sponsored.clicked')) AS clicks,
  toInt64(sumIf(JSONExtractInt(props, 'price_micros'), type = 'sponsored.served')) AS spent,
  toInt64(sumIf(JSONExtractInt(props, 'price_micros'), type = 'sponsored.served' AND toDate(occurred_at) = toDate(fromUnixTimestamp64Milli({cutoff:Int64})))) AS spent_day
FROM ${db}.events FINAL
WHERE type IN ('sponsored.served', 'sponsored.clicked') AND ${before}
GROUP BY campaign_id`,
      query_params: params,
    },
    conversations: {
      query: `SELECT DISTINCT business_id, user_id FROM ${db}.events WHERE type IN ${CONVERSING} AND ${before}`,
      query_params: params,
    },
    opts: {
      query: `SELECT business_id, user_id, argMax(type, occurred_at) AS last, toUnixTimestamp64Milli(max(occurred_at)) AS at_ms
FROM ${db}.events WHERE type IN ('optout', 'optin') AND ${before}
GROUP BY business_id, user_id`,
      query_params: params,
    },
    blocked: {
      query: `SELECT DISTINCT business_id, user_id FROM ${db}.events WHERE type = 'conversation.blocked' AND ${before}`,
      query_params: params,
    },
  };
}

/** Loads what the store knows before cutoffMs into the state; bus events before it then only feed windows. */
export async function bootstrapFromStore(store: Store, state: DecisionState, cutoffMs: number) {
  const q = buildBootstrapQueries(store.database, cutoffMs);
  state.statsCutoffMs = cutoffMs;
  for await (const r of store.each<{
    campaign_id: string;
    served: string;
    clicks: string;
    spent: string;
    spent_day: string;
  }>(q.delivery))
    Object.assign(state.statsFor(r.campaign_id), {
      served: Number(r.served),
      clicks: Number(r.clicks),
      spentTotal: Number(r.spent),
      spentDay: Number(r.spent_day),
      day: dayOf(cutoffMs),
    });
  for await (const r of store.each<{ business_id: string; user_id: string }>(q.conversations))
    state.noteConversation(r.business_id, r.user_id);
  for await (const r of store.each<{ business_id: string; user_id: string; last: string; at_ms: string }>(
    q.opts,
  ))
    state.noteOpt(r.business_id, r.user_id, r.last === 'optout', Number(r.at_ms));
  for await (const r of store.each<{ business_id: string; user_id: string }>(q.blocked))
    state.noteBlocked(r.business_id, r.user_id);
}
