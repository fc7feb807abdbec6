import {
  type AttributionModelsRequest,
  type AttributionRequest,
  NO_CURRENCY,
  withCampaignNames,
} from './attribution.ts';
import { ParleyError } from '../errors.ts';
import { CONVERSION_TYPES } from '../events/schema.ts';
import type { Model } from './models.ts';

// POST /v1/reports/attribution (and /attribution/models, and the campaigns report) at the
// default windows, from the credits the attribution processor stored: the same rows as the SQL
// path (campaign_id '' = unattributed).

/** The model of a credit row that holds for every model (a conversion left unattributed). */
export const ALL_MODELS = '*';

/**
 * A statement with columns model, campaign_id, currency, conversions, value: the stored credits
 * with a positive weight of conversions in [from, to), summed per model, campaign and currency.
 */
export function storedCredited(
  db: string,
  r: Omit<AttributionRequest, 'model'>,
  models: readonly Model[],
  businesses?: string[],
) {
  if (!(r.from < r.to)) throw new ParleyError('PARLEY_ERR_VALIDATION', 'from must be before to');
  const params: Record<string, unknown> = {
    models,
    all_models: ALL_MODELS,
    from: r.from,
    to: r.to,
    conv_types: r.conversion_types ?? CONVERSION_TYPES,
  };
  const where = [
    '(model IN {models:Array(String)} OR model = {all_models:String})',
    'occurred_at >= fromUnixTimestamp64Milli({from:Int64})',
    'occurred_at < fromUnixTimestamp64Milli({to:Int64})',
    'conversion_type IN {conv_types:Array(String)}',
    'weight > 0',
  ];
  if (r.business_id !== undefined) {
    where.push('business_id = {business_id:String}');
    params.business_id = r.business_id;
  }
  if (businesses) {
    where.push('business_id IN {businesses:Array(String)}');
    params.businesses = businesses;
  }
  // Credits do not keep the currency: each conversion's comes from its event, as the events
  // table's copy in conversion_currencies keeps it (migration 0090). A credit for every model
  // counts once for each model asked.
  const sql = `SELECT credit_model AS model, campaign_id, if(cur.currency = '', '${NO_CURRENCY}', cur.currency) AS currency, sum(weight) AS conversions, sum(value) AS value
FROM (
  SELECT conversion_id, campaign_id, weight, value,
    arrayJoin(if(model = {all_models:String}, {models:Array(String)}, [toString(model)])) AS credit_model
  FROM ${db}.attribution_credits FINAL WHERE ${where.join(' AND ')}
) AS c
LEFT JOIN (
  SELECT event_id AS conversion_id, any(currency) AS currency FROM ${db}.conversion_currencies
  WHERE type IN {conv_types:Array(String)} AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64})${businesses ? ' AND business_id IN {businesses:Array(String)}' : ''}${r.business_id !== undefined ? ' AND business_id = {business_id:String}' : ''}
  GROUP BY event_id
) AS cur USING (conversion_id)
GROUP BY model, campaign_id, currency`;
  return { sql, params };
}

export function buildStoredAttributionQuery(db: string, r: AttributionRequest, businesses?: string[]) {
  const { sql, params } = storedCredited(db, r, [r.model], businesses);
  const query = withCampaignNames(db, `SELECT campaign_id, currency, conversions, value FROM (${sql})`);
  return { query, query_params: params };
}

/** buildAttributionModelsQuery's rows from the stored credits. */
export function buildStoredAttributionModelsQuery(
  db: string,
  r: AttributionModelsRequest,
  businesses?: string[],
) {
  const { sql, params } = storedCredited(db, r, r.models, businesses);
  return { query: withCampaignNames(db, sql, true), query_params: params };
}
