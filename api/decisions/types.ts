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
  bid: { kind: 'cpm' | 'cpc'; micros: number };
  totalBudget: number;
  dailyBudget: number | null;
  freqMax: number;
  freqWindowMs: number;
  pacing: 'even' | 'asap';
  source: Campaign;
};

/** Delivery so far, from sponsored.served / sponsored.clicked on the bus (and local decisions). */
export type CampaignStats = {
  served: number;
  clicks: number;
  spentTotal: number;
  /** Spend on the UTC day `day`. */
  spentDay: number;
  day: number;
};
export const emptyStats = (): CampaignStats => ({ served: 0, clicks: 0, spentTotal: 0, spentDay: 0, day: 0 });
export const spentToday = (s: CampaignStats, nowMs: number) => (s.day === dayOf(nowMs) ? s.spentDay : 0);

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
  optedOut: boolean;
  blocked: boolean;
  hasConversation: boolean;
  /** Sponsored messages this user got from this business on this channel today. */
  channelToday: number;
  /** When this thread last got a sponsored message (ms), or -Infinity. */
  threadLastMs: number;
  /** Serves of a campaign to this user at or after sinceMs. */
  servesSince(campaignId: string, sinceMs: number): number;
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
] as const;
export type Reason = (typeof REASONS)[number];
