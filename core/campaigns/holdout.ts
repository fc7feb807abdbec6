import { createHmac } from 'node:crypto';

// Holdout assignment (docs/reports.md, "Lift"): whether a user is in a campaign's control group.
// A keyed hash of campaign and user, so the answer is the same in every process and after every
// restart, needs no stored state, and users cannot be told apart by group without the key.
// Campaigns draw independently: being held out of one says nothing about another.

/** The key when PARLEY_HOLDOUT_KEY is not set; changing the key reshuffles every running holdout. */
export const DEFAULT_HOLDOUT_KEY = 'parley-holdout-v1';

/** The user's position in [0, 1) for this campaign: 48 bits of HMAC-SHA256(key, campaign NUL user). */
export function holdoutPosition(campaignId: string, userId: string, key = DEFAULT_HOLDOUT_KEY): number {
  const digest = createHmac('sha256', key).update(`${campaignId}\0${userId}`).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** True when the user is in the campaign's control group (`share` of users, 0 to 0.5). */
export function inHoldout(campaignId: string, userId: string, share: number, key?: string): boolean {
  if (!(share > 0)) return false;
  return holdoutPosition(campaignId, userId, key) < share;
}

export type HoldoutGroup = 'control' | 'treatment';

/** The user's group for a campaign, as `sponsored.withheld` records it in `props.group`. */
export function holdoutGroup(
  campaign: { id: string; holdout?: number },
  userId: string,
  key?: string,
): HoldoutGroup {
  return inHoldout(campaign.id, userId, campaign.holdout ?? 0, key) ? 'control' : 'treatment';
}
