import { z } from 'zod';
import { CHANNELS } from '../events/schema.ts';
import { TIME_HINT, nonBlank, strictObject } from '../input.ts';

// The campaign body marketers send (DESIGN.md "Campaigns"), with checks that say what to change.
// Money is in micros (1e-6 of the currency unit), always a positive integer.

const micros = (what: string) =>
  z
    .number({ error: `${what} must be a number of micros` })
    .int(`${what} must be a whole number of micros`)
    .positive(`${what} must be positive`)
    .max(1e15, `${what} is implausibly large`);
const segmentIds = z.array(z.string().min(1).max(128)).max(50, 'at most 50 segments per list');
const SEGMENTS_RULE =
  'Segments that exist, of this business or of every business (else 422); those a user must be in need at least PARLEY_MIN_AUDIENCE_SIZE members';
// Keywords are matched as ingest keeps them: lower-cased words from PARLEY_KEYWORDS.
const keywords = z
  .array(nonBlank(64, 'keywords must not be empty', { lowerCase: true }))
  .max(100, 'at most 100 keywords per list');

export const CAMPAIGN_STATUSES = ['active', 'paused'] as const;

export const campaignInputSchema = z
  .strictObject({
    business_id: z
      .string()
      .min(1)
      .max(128)
      .describe('The business it runs for; a replacement keeps the campaign’s business (else 422)'),
    name: nonBlank(200, 'name must not be empty'),
    status: z.enum(CAMPAIGN_STATUSES).describe('Only active campaigns are served'),
    creative: strictObject({
      text: z.string().min(1, 'creative.text must not be empty').max(2000),
      buttons: z
        .array(
          strictObject({
            title: z.string().min(1).max(40),
            // A click redirects there: only web addresses, never javascript:, data: or file:.
            url: z
              .url({ protocol: /^https?$/, error: 'url must be an http or https address' })
              .max(2048)
              .meta({ pattern: '^[Hh][Tt][Tt][Pp][Ss]?://' })
              .optional(),
          }),
        )
        .max(3, 'at most 3 buttons')
        .optional(),
    }),
    targeting: z
      .strictObject({
        segments_all: segmentIds
          .optional()
          .describe(`The user must be in every one of these. ${SEGMENTS_RULE}`),
        segments_any: segmentIds
          .optional()
          .describe(`The user must be in at least one of these. ${SEGMENTS_RULE}`),
        segments_none: segmentIds
          .optional()
          .describe(
            'The user must be in none of these: existing segments, none of them in segments_all or segments_any',
          ),
        channels: z.array(z.enum(CHANNELS)).min(1).optional().describe('Default: every channel'),
        keywords_any: keywords
          .min(1)
          .optional()
          .describe(
            "Contextual: at least one of these must be in the request's context.keywords or the thread's latest incoming messages",
          )
          .meta({ example: ['haircut', 'beard'] }),
        keywords_none: keywords
          .optional()
          .describe(
            "Contextual: none of these may be in the request's context or the thread's latest messages",
          ),
      })
      .default({}),
    schedule: strictObject({
      start: z.iso.datetime({ offset: true, error: `schedule.start: ${TIME_HINT}` }),
      end: z.iso
        .datetime({ offset: true, error: `schedule.end: ${TIME_HINT}` })
        .optional()
        .describe('After schedule.start; leave out to run until the budget is spent'),
    }),
    budget: strictObject({
      total_micros: micros('budget.total_micros'),
      daily_micros: micros('budget.daily_micros').optional().describe('At most budget.total_micros'),
    }),
    bid: z.union([
      z.object({ cpm_micros: micros('bid.cpm_micros') }).strict(),
      z.object({ cpc_micros: micros('bid.cpc_micros') }).strict(),
    ]),
    frequency_cap: strictObject({
      max: z.number().int().positive('frequency_cap.max must be a positive integer'),
      per_seconds: z.number().int().positive('frequency_cap.per_seconds must be a positive integer'),
    }),
    pacing: z.enum(['even', 'asap']).default('even'),
    holdout: z
      .number({ error: 'holdout must be a number from 0 to 0.5' })
      .min(0, 'holdout must be at least 0')
      .max(0.5, 'holdout must be at most 0.5 (half the users)')
      .default(0)
      .describe(
        'Share of users held out as a control group for lift (0 to 0.5): they get ghost offers instead of this campaign',
      )
      .meta({ example: 0.1 }),
  })
  .superRefine((c, ctx) => {
    if (c.schedule.end !== undefined && Date.parse(c.schedule.end) <= Date.parse(c.schedule.start))
      ctx.addIssue({
        code: 'custom',
        path: ['schedule', 'end'],
        message: `schedule.end (${c.schedule.end}) must be after schedule.start (${c.schedule.start})`,
      });
    if (c.budget.daily_micros !== undefined && c.budget.daily_micros > c.budget.total_micros)
      ctx.addIssue({
        code: 'custom',
        path: ['budget', 'daily_micros'],
        message: `budget.daily_micros (${c.budget.daily_micros}) must not exceed budget.total_micros (${c.budget.total_micros})`,
      });
    const all = new Set(c.targeting.segments_all ?? []);
    const none = c.targeting.segments_none ?? [];
    for (const s of none)
      if (all.has(s) || (c.targeting.segments_any ?? []).includes(s))
        ctx.addIssue({
          code: 'custom',
          path: ['targeting', 'segments_none'],
          message: `segment ${s} is both required and excluded; no user could match`,
        });
  });
export type CampaignInput = z.output<typeof campaignInputSchema>;

/** A stored campaign: the input plus identity and bookkeeping (no holdout means 0). */
export type Campaign = Omit<CampaignInput, 'holdout'> & {
  holdout?: number;
  id: string;
  version: number;
  created_at: string;
  updated_at: string;
  deleted: boolean;
};

/** Every segment a campaign refers to, and those that must meet the minimum audience size. */
export function targetedSegments(c: Pick<CampaignInput, 'targeting'>) {
  const t = c.targeting;
  const positive = [...new Set([...(t.segments_all ?? []), ...(t.segments_any ?? [])])];
  const all = [...new Set([...positive, ...(t.segments_none ?? [])])];
  return { all, positive };
}
