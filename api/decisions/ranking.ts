import { type Rng, sampleBeta } from './rng.ts';
import type { CampaignStats, LiveCampaign } from './types.ts';

// Ranking: expected value per impression in micros. A CPM bid is worth bid/1000 per impression;
// a CPC bid is worth bid × click rate, where the click rate is a draw from the Beta(clicks+1,
// served−clicks+1) posterior (Thompson sampling): a new campaign's wide posterior sometimes draws
// high, so it gets explored, and as evidence accumulates each campaign is served about as often
// as it is the best one.

export function impressionValue(
  c: Pick<LiveCampaign, 'bid'>,
  s: Pick<CampaignStats, 'served' | 'clicks'>,
  rng: Rng,
): number {
  if (c.bid.kind === 'cpm') return c.bid.micros / 1000;
  const clicks = Math.min(s.clicks, s.served);
  return c.bid.micros * sampleBeta(clicks + 1, s.served - clicks + 1, rng);
}
