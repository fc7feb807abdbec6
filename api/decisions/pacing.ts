import { type CampaignStats, committedTotal, DAY_MS, type LiveCampaign, spentToday } from './types.ts';

// Pacing: `asap` serves whenever eligible. `even` keeps spend on a straight line through the
// UTC day (daily budget) and through the flight (total budget, when the flight has an end): the
// further observed spend runs ahead of the line, the lower the chance to serve, reaching zero
// once it is a band ahead (half a percent of the day's budget, a fifth of a percent of the
// flight's, or three impressions, whichever is more). Behind the line it always serves. Pure and stateless, so every api
// process computes the same probability from the same shared spend.

/** Serve probability from how far spend is ahead of plan, with a band of tolerance. */
export function aheadProbability(spent: number, planned: number, band: number) {
  const lead = spent - planned;
  if (lead <= 0) return 1;
  return Math.max(0, 1 - lead / band);
}

export function serveProbability(
  c: Pick<LiveCampaign, 'pacing' | 'startMs' | 'endMs' | 'totalBudget' | 'dailyBudget'>,
  stats: CampaignStats,
  nowMs: number,
  priceMicros: number,
): number {
  if (c.pacing === 'asap') return 1;
  let p = 1;
  if (c.dailyBudget !== null) {
    const dayStart = Math.floor(nowMs / DAY_MS) * DAY_MS;
    const from = Math.max(dayStart, c.startMs);
    const to = Math.min(dayStart + DAY_MS, c.endMs ?? Number.POSITIVE_INFINITY);
    const fraction = to > from ? Math.min(1, Math.max(0, (nowMs - from) / (to - from))) : 1;
    const band = Math.max(3 * priceMicros, c.dailyBudget * 0.005);
    p = Math.min(p, aheadProbability(spentToday(stats, nowMs), c.dailyBudget * fraction, band));
  }
  if (c.endMs !== null) {
    const fraction = Math.min(1, Math.max(0, (nowMs - c.startMs) / (c.endMs - c.startMs)));
    const band = Math.max(3 * priceMicros, c.totalBudget * 0.002, (c.dailyBudget ?? 0) * 0.005);
    p = Math.min(p, aheadProbability(committedTotal(stats), c.totalBudget * fraction, band));
  }
  return p;
}
