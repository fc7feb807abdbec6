import type { Campaign } from '../../core/campaigns/schema.ts';
import type { ChannelPolicy } from '../../core/config.ts';

// What the decision engine holds per campaign and per request, in the shape its pure functions
// (eligibility, pacing, ranking) take.

export const DAY_MS = 86_400_000;
export const dayOf = (ms: number) => Math.floor(ms / DAY_MS);

/** A campaign compiled for serving: segment ids resolved to the engine's segment indexes. */
export type LiveCampaign = {
  id: string;
  businessId: string;
  active: boolean;
  startMs: number;
  endMs: number | null;
  channels: ReadonlySet<string> | null;
  segAll: number[];
  segAny: number[];
  segNone: number[];
  /**
   * The same rules as bits over the segments its business's campaigns target (bit i: the i-th of
   * them; UserView.segments): null when they target more than 32, where the indexes are used.
   */
  segMask: SegmentMask | null;
  /** Lower-cased keywords: at least one must be in the conversation's context (null: no rule). */
  kwAny: ReadonlySet<string> | null;
  /** Lower-cased keywords none of which may be in the conversation's context. */
  kwNone: ReadonlySet<string> | null;
  bid: { kind: 'cpm' | 'cpc'; micros: number };
  totalBudget: number;
  dailyBudget: number | null;
  freqMax: number;
  freqWindowMs: number;
  pacing: 'even' | 'asap';
  /** Share of users held out (control group), 0 to 0.5. */
  holdout: number;
  /** Its delivery record (the same object as DecisionState.statsFor gives), read on every decision. */
  stats: CampaignStats;
  source: Campaign;
};

export type SegmentMask = { all: number; any: number; none: number };

/**
 * Delivery so far: impressions (sponsored.served) and clicks from the bus, plus the price of the
 * offers this process holds (`held…`), which count against budgets until confirmed or released.
 */
export type CampaignStats = {
  served: number;
  clicks: number;
  spentTotal: number;
  /** Spend on the UTC day `day`. */
  spentDay: number;
  day: number;
  heldTotal: number;
  /** Price of held offers made on the UTC day `heldDayOf`. */
  heldDay: number;
  heldDayOf: number;
};
export const emptyStats = (): CampaignStats => ({
  served: 0,
  clicks: 0,
  spentTotal: 0,
  spentDay: 0,
  day: 0,
  heldTotal: 0,
  heldDay: 0,
  heldDayOf: 0,
});
/** Spend today, the offers held today included. */
export const spentToday = (s: CampaignStats, nowMs: number) => {
  const today = dayOf(nowMs);
  return (s.day === today ? s.spentDay : 0) + (s.heldDayOf === today ? s.heldDay : 0);
};
/** Spend in total, the offers held included. */
export const committedTotal = (s: CampaignStats) => s.spentTotal + s.heldTotal;

export type DecisionRequest = {
  user_id: string;
  business_id: string;
  thread_id?: string;
  channel: string;
  context?: { keywords?: string[] };
  explain?: boolean;
};

export const threadOf = (r: Pick<DecisionRequest, 'thread_id' | 'business_id' | 'user_id'>) =>
  r.thread_id ?? `t_${r.business_id}_${r.user_id}`;

/** What the engine knows about the requesting user, the same for every candidate. */
export type UserView = {
  inSegment(index: number): boolean;
  /**
   * Membership of the segments the business's campaigns target, as bits in the order of their
   * segMask (read once per decision, so each campaign's targeting is a few bit operations).
   */
  segments: number;
  optedOut: boolean;
  blocked: boolean;
  hasConversation: boolean;
  /** Sponsored messages this user got from this business on this channel today. */
  channelToday: number;
  /** When this thread last got a sponsored message (ms), or -Infinity. */
  threadLastMs: number;
  /** Serves of a campaign to this user at or after sinceMs. */
  servesSince(campaignId: string, sinceMs: number): number;
  /** Whether any of these keywords is in the request's context or the thread's latest messages. */
  mentions(keywords: ReadonlySet<string>): boolean;
};

export type Policy = { quietPeriodMs: number; channel: ChannelPolicy };

export const REASONS = [
  'chosen',
  'outranked',
  'paused',
  'not_started',
  'ended',
  'targeting_not_matched',
  'channel_not_allowed',
  'opted_out',
  'blocked',
  'frequency_cap',
  'total_budget_exhausted',
  'daily_budget_exhausted',
  'thread_quiet_period',
  'no_conversation',
  'channel_daily_limit',
  'paced',
  'holdout',
] as const;
export type Reason = (typeof REASONS)[number];
