import {
  type CampaignStats,
  type LiveCampaign,
  type Policy,
  type Reason,
  committedTotal,
  spentToday,
  type UserView,
} from './types.ts';

// Whether one campaign may be served to one user now, and if not, the first reason why, in the
// order DESIGN.md lists the rules (the campaign's business is matched by the caller). Pure: everything it needs is passed in.

export function targetingMatches(
  c: Pick<LiveCampaign, 'segAll' | 'segAny' | 'segNone' | 'segMask' | 'kwAny' | 'kwNone'>,
  u: Pick<UserView, 'inSegment' | 'segments' | 'mentions'>,
) {
  const m = c.segMask;
  if (m) {
    const s = u.segments;
    if ((s & m.all) !== m.all || (m.any !== 0 && (s & m.any) === 0) || (s & m.none) !== 0) return false;
  } else if (!segmentsMatch(c, u)) return false;
  if (c.kwAny && !u.mentions(c.kwAny)) return false;
  if (c.kwNone?.size && u.mentions(c.kwNone)) return false;
  return true;
}

function segmentsMatch(
  c: Pick<LiveCampaign, 'segAll' | 'segAny' | 'segNone'>,
  u: Pick<UserView, 'inSegment'>,
) {
  for (const s of c.segAll) if (!u.inSegment(s)) return false;
  if (c.segAny.length > 0) {
    let any = false;
    for (const s of c.segAny)
      if (u.inSegment(s)) {
        any = true;
        break;
      }
    if (!any) return false;
  }
  for (const s of c.segNone) if (u.inSegment(s)) return false;
  return true;
}

/**
 * The price of one impression: CPM bid / 1000, or CPC bid × the estimated click rate. The estimate
 * starts from a prior of 1% worth 100 impressions, so a new campaign is not charged as if half
 * its impressions were clicked (ranking explores with its own, wider posterior).
 */
export function impressionPrice(c: Pick<LiveCampaign, 'bid'>, s: Pick<CampaignStats, 'served' | 'clicks'>) {
  if (c.bid.kind === 'cpm') return Math.max(1, Math.round(c.bid.micros / 1000));
  const clicks = Math.min(s.clicks, s.served);
  return Math.max(1, Math.round((c.bid.micros * (clicks + 1)) / (s.served + 100)));
}

export function ineligibility(
  c: LiveCampaign,
  channel: string,
  u: UserView,
  stats: CampaignStats,
  nowMs: number,
  policy: Policy,
  /** impressionPrice(c, stats), when the caller has it already. */
  price = impressionPrice(c, stats),
): Reason | null {
  if (!c.active) return 'paused';
  if (nowMs < c.startMs) return 'not_started';
  if (c.endMs !== null && nowMs >= c.endMs) return 'ended';
  if (!targetingMatches(c, u)) return 'targeting_not_matched';
  if (c.channels && !c.channels.has(channel)) return 'channel_not_allowed';
  if (u.optedOut) return 'opted_out';
  if (u.blocked) return 'blocked';
  if (u.servesSince(c.id, nowMs - c.freqWindowMs) >= c.freqMax) return 'frequency_cap';
  if (committedTotal(stats) + price > c.totalBudget) return 'total_budget_exhausted';
  if (c.dailyBudget !== null && spentToday(stats, nowMs) + price > c.dailyBudget)
    return 'daily_budget_exhausted';
  if (nowMs - u.threadLastMs < policy.quietPeriodMs) return 'thread_quiet_period';
  if (policy.channel.requireConversation && !u.hasConversation) return 'no_conversation';
  if (policy.channel.dailyLimit !== null && u.channelToday >= policy.channel.dailyLimit)
    return 'channel_daily_limit';
  return null;
}

/**
 * The rules that depend on the user and thread alone: when one fails, no campaign can be served,
 * whatever its own rules say (only the reason an explanation gives may differ).
 */
export function userIneligibility(u: UserView, nowMs: number, policy: Policy): Reason | null {
  if (u.optedOut) return 'opted_out';
  if (u.blocked) return 'blocked';
  if (nowMs - u.threadLastMs < policy.quietPeriodMs) return 'thread_quiet_period';
  if (policy.channel.requireConversation && !u.hasConversation) return 'no_conversation';
  if (policy.channel.dailyLimit !== null && u.channelToday >= policy.channel.dailyLimit)
    return 'channel_daily_limit';
  return null;
}
