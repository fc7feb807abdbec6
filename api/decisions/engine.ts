import { type HoldoutGroup, inHoldout } from '../../core/campaigns/holdout.ts';
import type { CanonicalEvent } from '../../core/events/schema.ts';
import { impressionPrice, ineligibility, userIneligibility } from './eligibility.ts';
import { serveProbability } from './pacing.ts';
import { impressionValue } from './ranking.ts';
import type { Rng } from './rng.ts';
import type { ServedFact, DecisionState } from './state.ts';
import { type DecisionRequest, type LiveCampaign, type Policy, type Reason, threadOf } from './types.ts';

// One decision: every campaign of the business is checked for eligibility, paced, valued, and the
// best one is offered and held at once (it counts against caps, limits and budgets from then on).
// Pure over the state, the clock and the random source.

export type Candidate = {
  campaign_id: string;
  reason: Reason;
  price_micros?: number;
  serve_probability?: number;
  value_micros?: number;
};

export type Decision = {
  decisionId: string;
  campaign: LiveCampaign;
  priceMicros: number;
  served: ServedFact;
};

/**
 * A would-be offer of a campaign with a holdout (docs/reports.md, lift): a ghost offer to a
 * control user (not made), or the marker of a real offer to a treatment user.
 */
export type Withheld = {
  decisionId: string;
  campaignId: string;
  priceMicros: number;
  group: HoldoutGroup;
};

export type DecideResult = {
  decision: Decision | null;
  candidates: Candidate[];
  /** Set when a campaign with a holdout would have been offered: record these as sponsored.withheld. */
  withheld?: Withheld[];
};

export function decide(
  state: DecisionState,
  req: DecisionRequest,
  opts: { nowMs: number; rng: Rng; policy: Policy; holdoutKey?: string },
): DecideResult {
  const thread = threadOf(req);
  state.releaseExpired(opts.nowMs);
  const view = state.view(
    req.user_id,
    req.business_id,
    req.channel,
    thread,
    opts.nowMs,
    req.context?.keywords,
  );
  // Without an explanation to give, a user nothing can be served to is answered at once.
  if (!req.explain && userIneligibility(view, opts.nowMs, opts.policy))
    return { decision: null, candidates: [] };
  // Candidates are only built when asked for: a plain decision keeps just the best so far.
  const explain = req.explain === true;
  const candidates: Candidate[] = [];
  type Pick = { c: LiveCampaign; price: number; value: number; cand?: Candidate; at: number };
  // The best so far, in variables: no object per eligible campaign.
  let winC: LiveCampaign | undefined;
  let winPrice = 0;
  let winValue = 0;
  let winAt = 0;
  let winCand: Candidate | undefined;
  // Campaigns with a holdout this user is in the control group of: never offered, but recorded as
  // ghost offers when they would have been (when they rank above the offer made).
  let control: Pick[] | undefined;
  let at = 0;
  const campaigns = explain
    ? state.campaignsOf(req.business_id)
    : state.servableCampaignsOf(req.business_id, req.channel);
  for (const c of campaigns) {
    const stats = c.stats;
    const price = impressionPrice(c, stats);
    const why = ineligibility(c, req.channel, view, stats, opts.nowMs, opts.policy, price);
    if (why) {
      if (explain) candidates.push({ campaign_id: c.id, reason: why });
      continue;
    }
    const p = serveProbability(c, stats, opts.nowMs, price);
    const cand: Candidate | undefined = explain
      ? { campaign_id: c.id, reason: 'outranked', price_micros: price, serve_probability: p }
      : undefined;
    if (cand) candidates.push(cand);
    if (p < 1 && opts.rng() >= p) {
      if (cand) cand.reason = 'paced';
      continue;
    }
    // A CPC campaign is worth at most its bid: one that cannot beat the best so far is not drawn
    // for (unless an explanation or a holdout needs its value).
    if (!cand && c.holdout === 0 && winC && c.bid.kind === 'cpc' && c.bid.micros <= winValue) {
      at++;
      continue;
    }
    const value = impressionValue(c, stats, opts.rng);
    if (cand) cand.value_micros = value;
    if (c.holdout > 0 && inHoldout(c.id, req.user_id, c.holdout, opts.holdoutKey)) {
      control ??= [];
      control.push({ c, price, value, cand, at });
    } else if (!winC || value > winValue) {
      // ties: the earlier campaign
      winC = c;
      winPrice = price;
      winValue = value;
      winAt = at;
      winCand = cand;
    }
    at++;
  }
  const withheld = control && ghosts(state, control, winC && { value: winValue, at: winAt });
  if (!winC) return { decision: null, candidates, ...(withheld ? { withheld } : {}) };
  const win = { c: winC, price: winPrice };
  if (winCand) winCand.reason = 'chosen';
  const offer: Omit<ServedFact, 'decisionId'> = {
    campaignId: win.c.id,
    businessId: req.business_id,
    userId: req.user_id,
    threadId: thread,
    channel: req.channel,
    priceMicros: win.price,
    atMs: opts.nowMs,
  };
  const decisionId = state.hold(offer);
  const served: ServedFact = {
    decisionId,
    campaignId: offer.campaignId,
    businessId: offer.businessId,
    userId: offer.userId,
    threadId: offer.threadId,
    channel: offer.channel,
    priceMicros: offer.priceMicros,
    atMs: offer.atMs,
  };
  const decision = { decisionId, campaign: win.c, priceMicros: win.price, served };
  // A treatment user's offer of a campaign with a holdout is marked the same way as a ghost.
  const marked =
    win.c.holdout > 0
      ? [
          ...(withheld ?? []),
          { decisionId, campaignId: win.c.id, priceMicros: win.price, group: 'treatment' as const },
        ]
      : withheld;
  return marked ? { decision, candidates, withheld: marked } : { decision, candidates };
}

/** The control campaigns that would have been offered: those ranking above the offer made. */
function ghosts(
  state: DecisionState,
  control: { c: LiveCampaign; price: number; value: number; cand?: Candidate; at: number }[],
  win: { value: number; at: number } | undefined,
): Withheld[] | undefined {
  const out: Withheld[] = [];
  for (const g of control) {
    if (win && (g.value < win.value || (g.value === win.value && g.at > win.at))) continue;
    if (g.cand) g.cand.reason = 'holdout';
    out.push({ decisionId: state.ghostId(), campaignId: g.c.id, priceMicros: g.price, group: 'control' });
  }
  return out.length ? out : undefined;
}

const CONVERSING = new Set(['message.received', 'postback', 'referral']);
/** Every type applyEvent acts on; the feed skips the rest unread. */
export const FEED_TYPES = new Set([
  ...CONVERSING,
  'optout',
  'optin',
  'conversation.blocked',
  'sponsored.served',
  'sponsored.clicked',
]);

/** Applies one event from the events topic to the state. */
export function applyEvent(state: DecisionState, e: CanonicalEvent) {
  const atMs = Date.parse(e.occurred_at);
  const p = e.props ?? {};
  if (CONVERSING.has(e.type)) {
    if (e.type === 'message.received') state.noteKeywords(e.thread_id, p.keywords, atMs);
    return state.noteConversation(e.business_id, e.user_id);
  }
  switch (e.type) {
    case 'optout':
    case 'optin':
      state.noteOpt(e.business_id, e.user_id, e.type === 'optout', atMs);
      break;
    case 'conversation.blocked':
      state.noteBlocked(e.business_id, e.user_id);
      break;
    case 'sponsored.served':
      state.noteServed({
        decisionId: String(p.decision_id ?? e.event_id),
        campaignId: String(p.campaign_id),
        businessId: e.business_id,
        userId: e.user_id,
        threadId: e.thread_id,
        channel: e.channel,
        priceMicros: Number(p.price_micros ?? 0) || 0,
        atMs,
      });
      break;
    case 'sponsored.clicked':
      state.noteClicked(String(p.decision_id ?? e.event_id), String(p.campaign_id), atMs);
      break;
  }
}
