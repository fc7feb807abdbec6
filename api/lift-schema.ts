import { z } from 'zod';
import { VERDICTS } from '../core/reports/lift-answer.ts';

// The answer of POST /v1/reports/lift as documented in the OpenAPI document (docs/reports.md, "Lift").

const interval = (what: string) =>
  z
    .object({
      estimate: z.number(),
      low: z.number().describe('95% interval, lower end'),
      high: z.number().describe('95% interval, upper end'),
    })
    .nullable()
    .describe(what);

const groupFigures = (who: string) =>
  z
    .object({
      users: z.number().describe(`${who} whose first would-be offer fell in [from, to)`),
      converted_users: z.number().describe('Of them, users with at least one conversion in the window'),
      conversions: z.number().describe('Their conversions in the window (repeat purchases included)'),
      conversion_rate: z.number().nullable().describe('converted_users / users'),
    })
    .describe(who);

const example = {
  campaign_id: 'cmp_4f1c2a',
  name: 'Spring cut',
  business_id: 'biz_barber_42',
  control: { users: 1012, converted_users: 91, conversions: 97, conversion_rate: 0.0899 },
  treatment: { users: 9105, converted_users: 1093, conversions: 1170, conversion_rate: 0.12 },
  absolute_lift: { estimate: 0.0301, low: 0.0103, high: 0.0473 },
  relative_lift: { estimate: 0.335, low: 0.088, high: 0.638 },
  probability_positive: 0.9985,
  incremental_conversions: { estimate: 274, low: 94, high: 431 },
  value: [
    {
      currency: 'EUR',
      control_per_user: 2.25,
      treatment_per_user: 3.01,
      difference_per_user: { estimate: 0.76, low: 0.24, high: 1.27 },
      incremental_value: { estimate: 6920, low: 2185, high: 11563 },
      incremental_roas: { estimate: 3.46, low: 1.09, high: 5.78 },
    },
  ],
  served: 8640,
  cost_micros: 2000000000,
  cost_per_incremental_conversion_micros: 7299270,
  last_touch_conversions: 612,
  minimum_detectable_effect: { absolute: 0.0266, relative: 0.296 },
  verdict: 'lift',
  summary:
    'The campaign caused about 274 extra converting users (95% interval 94 to 431): 12.0% of 9105 treated users converted, against 9.0% of 1012 held out (relative lift +34%, 95% interval +9% to +64%). Last-touch attribution credited the campaign with 612 conversions.',
};

export const liftAnswerSchema = z
  .object({
    campaigns: z.array(
      z.object({
        campaign_id: z.string(),
        name: z
          .string()
          .nullable()
          .describe('The campaign name (null when no campaign with this id was ever stored)'),
        business_id: z.string(),
        control: groupFigures('Held-out users (ghost offers)'),
        treatment: groupFigures('Users offered the campaign'),
        absolute_lift: interval(
          'Treatment rate − control rate (Newcombe hybrid score interval); null when a group is empty',
        ),
        relative_lift: interval(
          'Treatment rate / control rate − 1 (Katz log interval); null when either group has no converted users',
        ),
        probability_positive: z
          .number()
          .nullable()
          .describe('Posterior probability that the treatment rate is higher (uniform priors)'),
        incremental_conversions: interval(
          'Extra converting users caused by the campaign: absolute lift × treatment users',
        ),
        value: z
          .array(
            z.object({
              currency: z.string().describe("'' for conversions without a currency"),
              control_per_user: z.number(),
              treatment_per_user: z.number(),
              difference_per_user: interval('Value per user, treatment − control (bootstrap over users)'),
              incremental_value: interval('difference_per_user × treatment users'),
              incremental_roas: interval('incremental_value / cost; null without spend'),
            }),
          )
          .describe('Per currency of the conversions; never summed across currencies'),
        served: z.number().describe('Impressions (sponsored.served) of the campaign in [from, to)'),
        cost_micros: z.number().describe('Sum of price_micros of those impressions'),
        cost_per_incremental_conversion_micros: z
          .number()
          .nullable()
          .describe('cost_micros / incremental conversions; null unless both are positive'),
        last_touch_conversions: z
          .number()
          .describe('Conversions in [from, to) last-touch attribution credits the campaign with'),
        minimum_detectable_effect: z
          .object({ absolute: z.number().nullable(), relative: z.number().nullable() })
          .describe('Smallest lift detected 80% of the time at a 5% two-sided level, at these group sizes'),
        verdict: z
          .enum(VERDICTS)
          .describe(
            'lift / negative: the 95% interval of the absolute lift is above / below 0; inconclusive: it contains 0; too_small: a group has under 100 users or both together under 10 converted users',
          ),
        summary: z.string().describe('The result in one paragraph'),
      }),
    ),
  })
  .meta({
    id: 'LiftReport',
    description:
      'Per campaign with users in the analysis: each group, the lift with 95% intervals, incremental conversions, value and cost, the last-touch credit beside it, and a verdict',
    example: { campaigns: [example] },
  });

/** The 200 answer in each format the report speaks, for the OpenAPI document. */
export const liftResponse = {
  description:
    'The lift of each campaign with users in the analysis. CSV and Arrow: one row per campaign and currency of value, the fields flattened (docs/reports.md)',
  content: {
    'application/json': { schema: liftAnswerSchema },
    'text/csv': { schema: z.string().describe('RFC 4180, a header row, one row per campaign and currency') },
    'application/vnd.apache.arrow.stream': {
      schema: z.string().describe('An Arrow IPC stream with the same columns as the CSV'),
    },
  },
};
