import { z } from 'zod';
import { rangeFrom, rangeTo } from '../input.ts';
import { type AttributionRequest, DEFAULT_WINDOWS, campaignNamesSql, creditsCte } from './attribution.ts';
import { storedCredited } from './credits.ts';
import { MODELS } from './models.ts';

// GET /v1/reports/campaigns as ONE statement: delivery (served, clicks, spend) of sponsored
// events in [from, to) joined with the conversions in [from, to) the model credits to each
// campaign at the default windows, and each campaign's targeting kind (contextual: keywords only;
// segment: segments only; both; none) read from its stored targeting. Money is never summed across
// currencies: one row per campaign and conversion currency (delivery and spend repeat on each;
// currency NULL: no conversions). With `storedCredits`, the conversions come from the credits
// the attribution processor stored (the same numbers, without a pass over every user's events).

export const campaignsQuerySchema = z
  .object({
    from: rangeFrom,
    to: rangeTo,
    model: z.enum(MODELS).default('last_touch'),
    business_id: z.string().min(1).max(128).optional(),
  })
  .strict();
export type CampaignsQuery = z.output<typeof campaignsQuerySchema>;

/** CTEs ending with `credited`: campaign_id, currency, conversions, value (campaigns only). */
function computedCte(db: string, r: AttributionRequest, businesses?: string[]) {
  const { cte, params } = creditsCte(db, r, businesses);
  return {
    cte: `${cte}, credited AS (
  SELECT campaign_id, currency, sum(weight) AS conversions, sum(value) AS value FROM credits WHERE campaign_id != '' AND weight > 0 GROUP BY campaign_id, currency
)`,
    params,
  };
}

function storedCte(db: string, r: AttributionRequest, businesses?: string[]) {
  const { sql, params } = storedCredited(db, r, [r.model], businesses);
  return {
    cte: `credited AS (SELECT campaign_id, currency, conversions, value FROM (${sql}) WHERE campaign_id != '')`,
    params,
  };
}

export function buildCampaignsQuery(
  db: string,
  q: CampaignsQuery,
  businesses?: string[],
  opts: { storedCredits?: boolean } = {},
) {
  const r: AttributionRequest = { ...q, ...DEFAULT_WINDOWS };
  const { cte, params } = opts.storedCredits ? storedCte(db, r, businesses) : computedCte(db, r, businesses);
  const biz = [
    q.business_id !== undefined ? ' AND business_id = {business_id:String}' : '',
    businesses ? ' AND business_id IN {businesses:Array(String)}' : '',
  ].join('');
  const query = `WITH ${cte}, delivery AS (
  SELECT campaign_id, countIf(type = 'sponsored.served') AS served, countIf(type = 'sponsored.clicked') AS clicks,
    sumIf(JSONExtractInt(props, 'price_micros'), type = 'sponsored.served') AS spend_micros
  FROM ${db}.events FINAL
  PREWHERE type IN ('sponsored.served', 'sponsored.clicked') AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64})${biz}
  GROUP BY campaign_id
), joined AS (
  SELECT campaign_id, nullIf(currency, '') AS currency, served, clicks, spend_micros, conversions, value,
    sum(conversions) OVER (PARTITION BY campaign_id) AS campaign_conversions
  FROM delivery FULL OUTER JOIN credited USING (campaign_id)
), kinds AS (
  SELECT id AS campaign_id,
    length(JSONExtractArrayRaw(spec, 'targeting', 'keywords_any')) + length(JSONExtractArrayRaw(spec, 'targeting', 'keywords_none')) > 0 AS contextual,
    length(JSONExtractArrayRaw(spec, 'targeting', 'segments_all')) + length(JSONExtractArrayRaw(spec, 'targeting', 'segments_any')) + length(JSONExtractArrayRaw(spec, 'targeting', 'segments_none')) > 0 AS segmented
  FROM ${db}.campaigns FINAL
)
SELECT campaign_id, nullIf(campaign_name, '') AS campaign_name,
  multiIf(contextual AND segmented, 'both', contextual, 'contextual', segmented, 'segment', 'none') AS targeting_kind,
  currency, toUInt64(served) AS served, toUInt64(clicks) AS clicks,
  if(served > 0, clicks / served, NULL) AS click_rate, toInt64(spend_micros) AS spend_micros,
  campaign_conversions, conversions, value,
  if(campaign_conversions > 0, spend_micros / campaign_conversions, NULL) AS cost_per_conversion_micros,
  if(spend_micros > 0 AND currency IS NOT NULL, value / (spend_micros / 1e6), NULL) AS return_on_spend
FROM joined LEFT JOIN ${campaignNamesSql(db)} AS n USING (campaign_id) LEFT JOIN kinds USING (campaign_id)
ORDER BY campaign_id, currency`;
  return { query, query_params: params };
}

export const TARGETING_KINDS = ['contextual', 'segment', 'both', 'none'] as const;
export type TargetingKind = (typeof TARGETING_KINDS)[number];
type ByCurrency = Record<string, number>;
type KindRow = {
  targeting_kind: TargetingKind;
  served: number;
  clicks: number;
  spend_micros: number;
  conversions: number;
  value_by_currency: ByCurrency;
};

/** The campaign rows summed per targeting kind (every kind listed, in a fixed order). */
export function byTargeting(rows: readonly KindRow[]) {
  return TARGETING_KINDS.map((kind) => {
    const mine = rows.filter((r) => r.targeting_kind === kind);
    const sum = (k: 'served' | 'clicks' | 'spend_micros' | 'conversions') =>
      mine.reduce((a, r) => a + r[k], 0);
    const served = sum('served');
    const value: ByCurrency = {};
    for (const r of mine)
      for (const [currency, v] of Object.entries(r.value_by_currency))
        value[currency] = (value[currency] ?? 0) + v;
    return {
      targeting_kind: kind,
      campaigns: mine.length,
      served,
      clicks: sum('clicks'),
      click_rate: served > 0 ? sum('clicks') / served : null,
      spend_micros: sum('spend_micros'),
      conversions: sum('conversions'),
      value_by_currency: value,
    };
  });
}
