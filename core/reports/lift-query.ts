import { z } from 'zod';
import { rangeFrom, rangeTo } from '../input.ts';
import { CONVERSION_TYPES } from '../events/schema.ts';
import { ParleyError } from '../errors.ts';
import { DEFAULT_WINDOWS, creditsCte } from './attribution.ts';

// POST /v1/reports/lift as ONE SQL statement (meanings: docs/reports.md, "Lift"). Per campaign,
// the analysis population is the users whose first would-be offer (sponsored.withheld, either
// group) fell in [from, to); each is followed for window_seconds after that moment. Beside it:
// the campaign's impressions and spend in range, and what last-touch attribution credited it with.

export const liftRequestSchema = z
  .object({
    campaign_id: z.string().min(1).max(128).optional().describe('One campaign'),
    business_id: z.string().min(1).max(128).optional().describe('Every campaign of one business'),
    from: rangeFrom.describe('Users whose first would-be offer is at or after this time (before to)…'),
    to: rangeTo.describe('…and before this time'),
    conversion_types: z
      .array(z.enum(CONVERSION_TYPES as ['order.placed']))
      .min(1)
      .optional()
      .describe('Default: lead.submitted, appointment.booked, order.placed'),
    window_seconds: z
      .number()
      .int()
      .min(1)
      .max(366 * 86_400)
      .default(DEFAULT_WINDOWS.click_window_seconds)
      .describe('How long after the first would-be offer a conversion counts (default 7 days)'),
  })
  .strict()
  .refine((r) => r.campaign_id !== undefined || r.business_id !== undefined, {
    message: 'give campaign_id or business_id',
  })
  .meta({
    id: 'LiftRequest',
    // What the refine above checks, for the document.
    anyOf: [{ required: ['campaign_id'] }, { required: ['business_id'] }],
    example: {
      campaign_id: 'cmp_4f1c…',
      from: '2026-03-01T00:00:00Z',
      to: '2026-04-01T00:00:00Z',
      conversion_types: ['appointment.booked'],
      window_seconds: 604800,
    },
  });
export type LiftRequest = z.output<typeof liftRequestSchema>;

/** Per user and currency, the value of their conversions in the window: [[currencies], [values]]. */
export type UserValues = [string[], number[]];

export type LiftRow = {
  campaign_id: string;
  name: string;
  business_id: string;
  c_users: number | string;
  c_converted: number | string;
  c_conversions: number | string;
  c_values: UserValues[];
  t_users: number | string;
  t_converted: number | string;
  t_conversions: number | string;
  t_values: UserValues[];
  served: number | string;
  cost_micros: number | string;
  last_touch_conversions: number | string;
};

const groupColumns = (g: 'c' | 't', cond: string) =>
  `countIf(${cond}) AS ${g}_users, countIf(${cond} AND n > 0) AS ${g}_converted, sumIf(n, ${cond}) AS ${g}_conversions,
    groupArrayIf(v, ${cond} AND length(v.1) > 0) AS ${g}_values`;

export function buildLiftQuery(db: string, r: LiftRequest, businesses?: string[]) {
  if (!(r.from < r.to)) throw new ParleyError('PARLEY_ERR_VALIDATION', 'from must be before to');
  const { cte, params } = creditsCte(
    db,
    {
      model: 'last_touch',
      from: r.from,
      to: r.to,
      conversion_types: r.conversion_types,
      ...DEFAULT_WINDOWS,
      business_id: r.business_id,
    },
    businesses,
  );
  params.window = r.window_seconds * 1000;
  const biz = [
    r.business_id !== undefined ? ' AND business_id = {business_id:String}' : '',
    businesses ? ' AND business_id IN {businesses:Array(String)}' : '',
  ].join('');
  let scope = biz;
  if (r.campaign_id !== undefined) {
    scope += ' AND campaign_id = {campaign_id:String}';
    params.campaign_id = r.campaign_id;
  }
  const inWindow = 'c.tc > f.t0 AND c.tc <= f.t0 + {window:Int64}';
  const query = `WITH ${cte}, first_offer AS (
  -- Every marker ever, so "first" means first in the campaign's life, not first in the range.
  SELECT campaign_id, business_id, user_id, min(toInt64(toUnixTimestamp64Milli(occurred_at))) AS t0,
    argMin(JSONExtractString(props, 'group'), (occurred_at, event_id)) = 'treatment' AS treated
  FROM ${db}.events FINAL
  WHERE type = 'sponsored.withheld' AND occurred_at < fromUnixTimestamp64Milli({to:Int64})${scope}
  GROUP BY campaign_id, business_id, user_id
  HAVING t0 >= {from:Int64} AND t0 < {to:Int64}
), offered_conv AS (
  SELECT business_id, user_id, toInt64(toUnixTimestamp64Milli(occurred_at)) AS tc, value,
    JSONExtractString(props, 'currency') AS currency
  FROM ${db}.events FINAL
  WHERE type IN {conv_types:Array(String)}
    AND occurred_at > fromUnixTimestamp64Milli({from:Int64}) AND occurred_at <= fromUnixTimestamp64Milli({to:Int64} + {window:Int64})${biz}
    AND (business_id, user_id) IN (SELECT business_id, user_id FROM first_offer)
), offered_user AS (
  SELECT f.campaign_id AS campaign_id, f.business_id AS business_id, f.treated AS treated,
    countIf(${inWindow}) AS n, sumMapIf([c.currency], [c.value], ${inWindow}) AS v
  FROM first_offer AS f LEFT JOIN offered_conv AS c ON c.business_id = f.business_id AND c.user_id = f.user_id
  GROUP BY f.campaign_id, f.business_id, f.user_id, f.treated
), grouped AS (
  SELECT campaign_id, any(business_id) AS business_id,
    ${groupColumns('c', 'NOT treated')},
    ${groupColumns('t', 'treated')}
  FROM offered_user
  GROUP BY campaign_id
), delivery AS (
  SELECT campaign_id, count() AS served, sum(JSONExtractInt(props, 'price_micros')) AS cost_micros
  FROM ${db}.events FINAL
  WHERE type = 'sponsored.served' AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}) AND occurred_at < fromUnixTimestamp64Milli({to:Int64})${scope}
  GROUP BY campaign_id
), last_touch AS (
  SELECT campaign_id, sum(weight) AS conversions FROM credits WHERE campaign_id != '' AND weight > 0 GROUP BY campaign_id
), names AS (
  SELECT id AS campaign_id, argMax(name, version) AS name FROM ${db}.campaigns
  WHERE id IN (SELECT campaign_id FROM grouped) GROUP BY id
)
SELECT g.campaign_id AS campaign_id, n.name AS name, g.business_id AS business_id,
  g.c_users AS c_users, g.c_converted AS c_converted, g.c_conversions AS c_conversions, g.c_values AS c_values,
  g.t_users AS t_users, g.t_converted AS t_converted, g.t_conversions AS t_conversions, g.t_values AS t_values,
  d.served AS served, d.cost_micros AS cost_micros, lt.conversions AS last_touch_conversions
FROM grouped AS g
LEFT JOIN delivery AS d ON d.campaign_id = g.campaign_id
LEFT JOIN last_touch AS lt ON lt.campaign_id = g.campaign_id
LEFT JOIN names AS n ON n.campaign_id = g.campaign_id
ORDER BY campaign_id`;
  return { query, query_params: params };
}
