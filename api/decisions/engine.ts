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

export type DecideResult = { decision: Decision | null; candidates: Candidate[] };

export function decide(
  state: DecisionState,
  req: DecisionRequest,
  opts: { nowMs: number; rng: Rng; policy: Policy },
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
  let win: { c: LiveCampaign; price: number; value: number; cand?: Candidate } | undefined;
  const campaigns = explain
    ? state.campaignsOf(req.business_id)
    : state.servableCampaignsOf(req.business_id, req.channel);
  for (const c of campaigns) {
    const stats = state.statsOf(c.id);
    const why = ineligibility(c, req.channel, view, stats, opts.nowMs, opts.policy);
    if (why) {
      if (explain) candidates.push({ campaign_id: c.id, reason: why });
      continue;
    }
    const price = impressionPrice(c, stats);
    const p = serveProbability(c, stats, opts.nowMs, price);
    const cand: Candidate | undefined = explain
      ? { campaign_id: c.id, reason: 'outranked', price_micros: price, serve_probability: p }
      : undefined;
    if (cand) candidates.push(cand);
    if (p < 1 && opts.rng() >= p) {
      if (cand) cand.reason = 'paced';
      continue;
    }
    const value = impressionValue(c, stats, opts.rng);
    if (cand) cand.value_micros = value;
    if (!win || value > win.value) win = { c, price, value, cand }; // ties: the earlier campaign
  }
  if (!win) return { decision: null, candidates };
  if (win.cand) win.cand.reason = 'chosen';
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
  const served: ServedFact = { decisionId, ...offer };
  return { decision: { decisionId, campaign: win.c, priceMicros: win.price, served }, candidates };
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
