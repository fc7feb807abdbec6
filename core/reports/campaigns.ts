import { z } from 'zod';
import { type AttributionRequest, DEFAULT_WINDOWS, campaignNamesSql, creditsCte } from './attribution.ts';
import { isoTime } from './funnel.ts';
import { MODELS } from './models.ts';

// GET /v1/reports/campaigns as ONE statement: delivery (served, clicks, spend) of sponsored
// events in [from, to) joined with the conversions in [from, to) the model credits to each
// campaign at the default windows. Money is never summed across currencies: one row per campaign
// and conversion currency (delivery and spend repeat on each; currency NULL: no conversions).

export const campaignsQuerySchema = z
  .object({
    from: isoTime,
    to: isoTime,
    model: z.enum(MODELS).default('last_touch'),
    business_id: z.string().min(1).max(128).optional(),
  })
  .strict();
export type CampaignsQuery = z.output<typeof campaignsQuerySchema>;

export function buildCampaignsQuery(db: string, q: CampaignsQuery, businesses?: string[]) {
  const r: AttributionRequest = { ...q, ...DEFAULT_WINDOWS };
  const { cte, params } = creditsCte(db, r, businesses);
  const biz = [
    q.business_id !== undefined ? ' AND business_id = {business_id:String}' : '',
    businesses ? ' AND business_id IN {businesses:Array(String)}' : '',
  ].join('');
  const query = `WITH ${cte}, delivery AS (
  SELECT campaign_id, countIf(type = 'sponsored.served') AS served, countIf(type = 'sponsored.clicked') AS clicks,
    sumIf(JSONExtractInt(props, 'price_micros'), type = 'sponsored.served') AS spend_micros
  FROM ${db}.events FINAL
  WHERE type IN ('sponsored.served', 'sponsored.clicked') AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64})${biz}
  GROUP BY campaign_id
), credited AS (
  SELECT campaign_id, currency, sum(weight) AS conversions, sum(value) AS value FROM credits WHERE campaign_id != '' AND weight > 0 GROUP BY campaign_id, currency
), joined AS (
  SELECT campaign_id, nullIf(currency, '') AS currency, served, clicks, spend_micros, conversions, value,
    sum(conversions) OVER (PARTITION BY campaign_id) AS campaign_conversions
  FROM delivery FULL OUTER JOIN credited USING (campaign_id)
)
SELECT campaign_id, nullIf(campaign_name, '') AS campaign_name, currency, toUInt64(served) AS served, toUInt64(clicks) AS clicks,
  if(served > 0, clicks / served, NULL) AS click_rate, toInt64(spend_micros) AS spend_micros,
  campaign_conversions, conversions, value,
  if(campaign_conversions > 0, spend_micros / campaign_conversions, NULL) AS cost_per_conversion_micros,
  if(spend_micros > 0 AND currency IS NOT NULL, value / (spend_micros / 1e6), NULL) AS return_on_spend
FROM joined LEFT JOIN ${campaignNamesSql(db)} AS n USING (campaign_id)
ORDER BY campaign_id, currency`;
  return { query, query_params: params };
}
