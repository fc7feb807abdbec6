import { z } from 'zod';
import { CHANNELS } from '../events/schema.ts';

// The campaign body marketers send (DESIGN.md "Campaigns"), with checks that say what to change.
// Money is in micros (1e-6 of the currency unit), always a positive integer.

const micros = (what: string) =>
  z
    .number({ error: `${what} must be a number of micros` })
    .int(`${what} must be a whole number of micros`)
    .positive(`${what} must be positive`)
    .max(1e15, `${what} is implausibly large`);
const segmentIds = z.array(z.string().min(1).max(128)).max(50, 'at most 50 segments per list');

export const CAMPAIGN_STATUSES = ['active', 'paused'] as const;

export const campaignInputSchema = z
  .object({
    business_id: z.string().min(1).max(128),
    name: z.string().trim().min(1, 'name must not be empty').max(200),
    status: z.enum(CAMPAIGN_STATUSES).describe('Only active campaigns are served'),
    creative: z.object({
      text: z.string().min(1, 'creative.text must not be empty').max(2000),
      buttons: z
        .array(
          z.object({
            title: z.string().min(1).max(40),
            // A click redirects there: only web addresses, never javascript:, data: or file:.
            url: z
              .url({ protocol: /^https?$/, error: 'url must be an http or https address' })
              .max(2048)
              .optional(),
          }),
        )
        .max(3, 'at most 3 buttons')
        .optional(),
    }),
    targeting: z
      .object({
        segments_all: segmentIds.optional().describe('The user must be in every one of these'),
        segments_any: segmentIds.optional().describe('The user must be in at least one of these'),
        segments_none: segmentIds.optional().describe('The user must be in none of these'),
        channels: z.array(z.enum(CHANNELS)).min(1).optional().describe('Default: every channel'),
      })
      .default({}),
    schedule: z.object({
      start: z.iso.datetime({ offset: true, error: 'schedule.start must be an ISO-8601 time with a zone' }),
      end: z.iso
        .datetime({ offset: true, error: 'schedule.end must be an ISO-8601 time with a zone' })
        .optional(),
    }),
    budget: z.object({
      total_micros: micros('budget.total_micros'),
      daily_micros: micros('budget.daily_micros').optional(),
    }),
    bid: z.union([
      z.object({ cpm_micros: micros('bid.cpm_micros') }).strict(),
      z.object({ cpc_micros: micros('bid.cpc_micros') }).strict(),
    ]),
    frequency_cap: z.object({
      max: z.number().int().positive('frequency_cap.max must be a positive integer'),
      per_seconds: z.number().int().positive('frequency_cap.per_seconds must be a positive integer'),
    }),
    pacing: z.enum(['even', 'asap']).default('even'),
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

/** A stored campaign: the input plus identity and bookkeeping. */
export type Campaign = CampaignInput & {
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
