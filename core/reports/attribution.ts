import { z } from 'zod';
import { rangeFrom, rangeTo } from '../input.ts';
import { CONVERSION_TYPES } from '../events/schema.ts';
import { ParleyError } from '../errors.ts';
import { MODELS, type Model } from './models.ts';
import { entry } from '../maps.ts';

// POST /v1/reports/attribution as ONE SQL statement (meanings: docs/reports.md). Conversions and
// touchpoints are gathered per (user, business) in one pass over the events; each distinct
// conversion filters the touchpoints to its own windows, so its split is computed in place.

export const DEFAULT_WINDOWS = {
  click_window_seconds: 604_800,
  view_window_seconds: 86_400,
  half_life_seconds: 604_800,
};

const seconds = (max: number) => z.number().int().min(1).max(max);
export const attributionRequestSchema = z
  .object({
    model: z.enum(MODELS),
    from: rangeFrom,
    to: rangeTo,
    conversion_types: z
      .array(z.enum(CONVERSION_TYPES as ['order.placed']))
      .min(1)
      .optional(),
    click_window_seconds: seconds(366 * 86_400).default(DEFAULT_WINDOWS.click_window_seconds),
    view_window_seconds: seconds(366 * 86_400).default(DEFAULT_WINDOWS.view_window_seconds),
    half_life_seconds: seconds(10 * 366 * 86_400).default(DEFAULT_WINDOWS.half_life_seconds),
    business_id: z.string().min(1).max(128).optional(),
  })
  .strict();
export type AttributionRequest = z.output<typeof attributionRequestSchema>;

export const isDefaultWindows = (r: Omit<AttributionRequest, 'model'>) =>
  r.click_window_seconds === DEFAULT_WINDOWS.click_window_seconds &&
  r.view_window_seconds === DEFAULT_WINDOWS.view_window_seconds &&
  r.half_life_seconds === DEFAULT_WINDOWS.half_life_seconds;

/** Weights over `chosen` (sorted touchpoints, x.1 = ms) for one conversion at `tc`. */
export function weightsSql(model: Model): string {
  const idx = 'range(1, length(chosen) + 1)';
  switch (model) {
    case 'last_touch':
      return `arrayMap(i -> if(i = length(chosen), 1., 0.), ${idx})`;
    case 'first_touch':
      return `arrayMap(i -> if(i = 1, 1., 0.), ${idx})`;
    case 'linear':
      return `arrayMap(i -> 1. / length(chosen), ${idx})`;
    case 'time_decay': {
      // Relative to the latest touch: the largest weight is 1, so nothing underflows to 0/0.
      const raw =
        'arrayMap(x -> exp2(-(chosen[length(chosen)].1 - x.1) / 1000 / {half_life:Float64}), chosen)';
      return `arrayMap(w -> w / arraySum(${raw}), ${raw})`;
    }
    case 'position_based':
      return `arrayMap(i -> multiIf(length(chosen) = 1, 1., length(chosen) = 2, 0.5, i = 1 OR i = length(chosen), 0.4, 0.2 / (length(chosen) - 2)), ${idx})`;
  }
}

/** What a conversion without a currency is reported under (ISO 4217's "no currency"). */
export const NO_CURRENCY = 'XXX';

/** A conversion's currency from its props: trimmed, upper-cased, NO_CURRENCY when absent. */
export const CURRENCY_SQL = `if(trimBoth(JSONExtractString(props, 'currency')) = '', '${NO_CURRENCY}', upperUTF8(trimBoth(JSONExtractString(props, 'currency'))))`;

/** Campaign names by id, for reports to show next to campaign ids (deleted campaigns keep theirs). */
export const campaignNamesSql = (db: string) =>
  `(SELECT id AS campaign_id, name AS campaign_name FROM ${db}.campaigns FINAL)`;

/**
 * The shared part of every attribution statement: CTE `credits` with one row per
 * (model, conversion, campaign share): model, campaign_id ('' when unattributed), currency,
 * weight, value. `models` (default: the request's) are all computed in the same pass.
 */
export function creditsCte(
  db: string,
  r: AttributionRequest,
  businesses?: string[],
  models: readonly Model[] = [r.model],
) {
  if (!(r.from < r.to)) throw new ParleyError('PARLEY_ERR_VALIDATION', 'from must be before to');
  const params: Record<string, unknown> = {
    from: r.from,
    to: r.to,
    conv_types: r.conversion_types ?? CONVERSION_TYPES,
    cw: r.click_window_seconds * 1000,
    vw: r.view_window_seconds * 1000,
    half_life: r.half_life_seconds,
    lookback: Math.max(r.click_window_seconds, r.view_window_seconds) * 1000,
  };
  const biz: string[] = [];
  if (r.business_id !== undefined) {
    biz.push('business_id = {business_id:String}');
    params.business_id = r.business_id;
  }
  if (businesses) {
    biz.push('business_id IN {businesses:Array(String)}');
    params.businesses = businesses;
  }
  const and = biz.map((b) => ` AND ${b}`).join('');
  // One pass over the events: per (user, business), its conversions in [from, to) and its
  // touchpoints from the longest window before `from` on; each conversion then filters its own.
  // PREWHERE: FINAL merges only the rows of those types and times (copies of one event are the
  // same row, so filtering them before the merge keeps all of them or none).
  const cte = `per_user AS (
  SELECT groupArrayIf((t, value, currency), is_conv AND t >= {from:Int64}) AS convs,
    -- (time, campaign, is click), sorted once per user: by time, equal times by campaign.
    arraySort(groupArrayIf((t, campaign_id, type = 'sponsored.clicked'), NOT is_conv)) AS tps
  FROM (
    SELECT user_id, business_id, type, toInt64(toUnixTimestamp64Milli(occurred_at)) AS t, value, campaign_id,
      type IN {conv_types:Array(String)} AS is_conv, if(is_conv, ${CURRENCY_SQL}, '') AS currency
    FROM ${db}.events FINAL
    PREWHERE (type IN {conv_types:Array(String)} OR type IN ('sponsored.served', 'sponsored.clicked'))
      AND occurred_at >= fromUnixTimestamp64Milli({from:Int64} - {lookback:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64})${and}
  )
  GROUP BY user_id, business_id
  HAVING length(convs) > 0
), touched AS (
  SELECT conv.1 AS tc, conv.2 AS cvalue, conv.3 AS currency,
    arrayFilter(x -> x.3 AND x.1 >= tc - {cw:Int64} AND x.1 < tc, tps) AS clicks,
    if(length(clicks) > 0, clicks, arrayFilter(x -> NOT x.3 AND x.1 >= tc - {vw:Int64} AND x.1 < tc, tps)) AS chosen
  FROM per_user ARRAY JOIN convs AS conv
), credits AS (
  SELECT ${models.length === 1 ? `'${models[0]}'` : 'model'} AS model, share.1 AS campaign_id, currency, share.2 AS weight, share.2 * cvalue AS value
  FROM touched
  ${modelsSql(models)}
  ARRAY JOIN if(length(chosen) = 0, [('', 1.)], arrayZip(arrayMap(x -> x.2, chosen), ${modelWeightsSql(models)})) AS share
)`;
  return { cte, params };
}

const modelList = (models: readonly Model[]) => `[${models.map((m) => `'${m}'`).join(', ')}]`;

/** Each conversion once per model (models are names from MODELS: safe to inline). */
function modelsSql(models: readonly Model[]): string {
  if (new Set(models).size !== models.length || !models.every((m) => MODELS.includes(m)))
    throw new ParleyError('PARLEY_ERR_VALIDATION', 'models: distinct names of attribution models');
  return models.length === 1 ? '' : `ARRAY JOIN ${modelList(models)} AS model`;
}

/** The weights of the row's `model` among `models`. */
function modelWeightsSql(models: readonly Model[]): string {
  if (models.length === 1) return weightsSql(models[0]);
  return `multiIf(${models
    .slice(0, -1)
    .map((m) => `model = '${m}', ${weightsSql(m)}`)
    .join(', ')}, ${weightsSql(models[models.length - 1])})`;
}

/**
 * Rows per (campaign, currency): campaign_id ('' = unattributed), campaign_name, currency,
 * conversions, value; campaigns with a positive share. `credited` is a statement with columns
 * campaign_id, currency, conversions, value (and model, first, with `byModel`).
 */
export function withCampaignNames(db: string, credited: string, byModel = false): string {
  const model = byModel ? 'model, ' : '';
  return `SELECT ${model}campaign_id, nullIf(campaign_name, '') AS campaign_name, currency, conversions, value
FROM (${credited}) AS r
LEFT JOIN ${campaignNamesSql(db)} AS n USING (campaign_id)
ORDER BY ${model}campaign_id, currency`;
}

/** The credited rows of `credits`, summed per (model, campaign, currency). */
const CREDITED_BY_MODEL = `SELECT model, campaign_id, currency, sum(weight) AS conversions, sum(value) AS value
FROM credits
WHERE weight > 0 OR campaign_id = ''
GROUP BY model, campaign_id, currency`;

export function buildAttributionQuery(db: string, r: AttributionRequest, businesses?: string[]) {
  const { cte, params } = creditsCte(db, r, businesses);
  const credited = `SELECT campaign_id, currency, conversions, value FROM (${CREDITED_BY_MODEL})`;
  const query = `WITH ${cte}
${withCampaignNames(db, credited)}`;
  return { query, query_params: params };
}

/**
 * POST /v1/reports/attribution/models: several models over one pass of the events. The request
 * without `model`, and the models to compute (distinct; default every model).
 */
export const attributionModelsRequestSchema = attributionRequestSchema
  .omit({ model: true })
  .extend({
    models: z
      .array(z.enum(MODELS))
      .min(1)
      .max(MODELS.length)
      .refine((m) => new Set(m).size === m.length, 'models must be distinct')
      .meta({ uniqueItems: true })
      .default([...MODELS]),
  })
  .strict();
export type AttributionModelsRequest = z.output<typeof attributionModelsRequestSchema>;

/** Rows with `model` first, then as buildAttributionQuery's; one statement for every model. */
export function buildAttributionModelsQuery(db: string, r: AttributionModelsRequest, businesses?: string[]) {
  const { cte, params } = creditsCte(db, { ...r, model: r.models[0] }, businesses, r.models);
  return { query: `WITH ${cte}\n${withCampaignNames(db, CREDITED_BY_MODEL, true)}`, query_params: params };
}

/** One answer per model, in the order asked, from rows that carry their model. */
export function attributionModelsAnswer(
  models: readonly Model[],
  rows: (AttributionRow & { model: Model })[],
) {
  return {
    models: models.map((m) =>
      attributionAnswer(
        m,
        rows.filter((r) => r.model === m),
      ),
    ),
  };
}

export type AttributionRow = {
  campaign_id: string;
  campaign_name: string | null;
  currency: string;
  conversions: number;
  value: number;
};

/** Money per currency, never summed across currencies. */
export type ByCurrency = Record<string, number>;

/** One entry per campaign: conversions (a count, summed) and value by currency. */
export function attributionAnswer(model: Model, rows: AttributionRow[]) {
  const campaigns = new Map<
    string,
    { campaign_id: string; campaign_name: string | null; conversions: number; value_by_currency: ByCurrency }
  >();
  const unattributed = { conversions: 0, value_by_currency: {} as ByCurrency };
  for (const r of rows) {
    const into =
      r.campaign_id === ''
        ? unattributed
        : entry(campaigns, r.campaign_id, () => ({
            campaign_id: r.campaign_id,
            campaign_name: r.campaign_name ?? null,
            conversions: 0,
            value_by_currency: {},
          }));
    into.conversions += Number(r.conversions);
    into.value_by_currency[r.currency] = (into.value_by_currency[r.currency] ?? 0) + Number(r.value);
  }
  return { model, rows: [...campaigns.values()], unattributed };
}
