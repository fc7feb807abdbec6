import { describe, expect, it } from 'vitest';
import { inHoldout } from '../../core/campaigns/holdout.ts';
import type { Campaign } from '../../core/campaigns/schema.ts';
import { impressionPrice, ineligibility, targetingMatches, userIneligibility } from './eligibility.ts';
import { applyEvent, decide } from './engine.ts';
import { aheadProbability, serveProbability } from './pacing.ts';
import { impressionValue } from './ranking.ts';
import { sampleBeta, seededRng } from './rng.ts';
import { DecisionState } from './state.ts';
import { DAY_MS, emptyStats, type Policy, type UserView } from './types.ts';

const T0 = Date.parse('2026-03-10T00:00:00Z');
const policy: Policy = { quietPeriodMs: 600_000, channel: { requireConversation: true, dailyLimit: 1 } };

function campaign(over: Partial<Campaign> & { id: string }): Campaign {
  return {
    business_id: 'b1',
    name: over.id,
    status: 'active',
    creative: { text: 'hello' },
    targeting: {},
    schedule: { start: '2026-03-01T00:00:00Z', end: '2026-04-01T00:00:00Z' },
    budget: { total_micros: 1_000_000_000 },
    bid: { cpm_micros: 2_000_000 },
    frequency_cap: { max: 3, per_seconds: 86_400 },
    pacing: 'asap',
    version: 1,
    created_at: '2026-03-01T00:00:00Z',
    updated_at: '2026-03-01T00:00:00Z',
    deleted: false,
    ...over,
  };
}

const user = (over: Partial<UserView> = {}): UserView => ({
  inSegment: () => true,
  segments: -1,
  optedOut: false,
  blocked: false,
  hasConversation: true,
  channelToday: 0,
  threadLastMs: Number.NEGATIVE_INFINITY,
  mentions: () => false,
  servesSince: () => 0,
  ...over,
});

function live(c: Campaign) {
  const s = new DecisionState();
  s.setCampaigns([c]);
  return s.campaignsOf(c.business_id)[0];
}

describe('eligibility', () => {
  const c = live(campaign({ id: 'c1', targeting: { channels: ['whatsapp'] } }));
  const ok = (u = user(), now = T0, stats = emptyStats()) =>
    ineligibility(c, 'whatsapp', u, stats, now, policy);

  it('serves an eligible user and names the first failing rule otherwise', () => {
    expect(ok()).toBeNull();
    expect(ineligibility({ ...c, active: false }, 'whatsapp', user(), emptyStats(), T0, policy)).toBe(
      'paused',
    );
    expect(ok(user(), Date.parse('2026-02-01T00:00:00Z'))).toBe('not_started');
    expect(ok(user(), Date.parse('2026-04-01T00:00:00Z'))).toBe('ended');
    expect(ineligibility(c, 'sms', user(), emptyStats(), T0, policy)).toBe('channel_not_allowed');
    expect(ok(user({ inSegment: () => false, segments: 0 }))).toBeNull(); // no targeting: everyone
    expect(ok(user({ optedOut: true }))).toBe('opted_out');
    expect(ok(user({ blocked: true }))).toBe('blocked');
    expect(ok(user({ hasConversation: false }))).toBe('no_conversation');
    expect(ok(user({ channelToday: 1 }))).toBe('channel_daily_limit');
    expect(ok(user({ threadLastMs: T0 - 599_999 }))).toBe('thread_quiet_period');
    expect(ok(user({ threadLastMs: T0 - 600_000 }))).toBeNull();
    expect(ok(user({ servesSince: () => 3 }))).toBe('frequency_cap');
    expect(ok(user({ servesSince: () => 2 }))).toBeNull();
  });

  it('finds the rules no campaign can pass for this user', () => {
    expect(userIneligibility(user(), T0, policy)).toBeNull();
    expect(userIneligibility(user({ optedOut: true }), T0, policy)).toBe('opted_out');
    expect(userIneligibility(user({ blocked: true }), T0, policy)).toBe('blocked');
    expect(userIneligibility(user({ threadLastMs: T0 - 1 }), T0, policy)).toBe('thread_quiet_period');
    expect(userIneligibility(user({ hasConversation: false }), T0, policy)).toBe('no_conversation');
    expect(userIneligibility(user({ channelToday: 1 }), T0, policy)).toBe('channel_daily_limit');
    // Whenever it names a reason, every campaign is ineligible too.
    const states = [
      user({ optedOut: true }),
      user({ blocked: true }),
      user({ hasConversation: false }),
      user({ channelToday: 1 }),
    ];
    for (const u of states) expect(ineligibility(c, 'whatsapp', u, emptyStats(), T0, policy)).not.toBeNull();
  });

  it('applies the channel policy only as configured', () => {
    const loose: Policy = { quietPeriodMs: 0, channel: { requireConversation: false, dailyLimit: null } };
    expect(
      ineligibility(
        c,
        'whatsapp',
        user({ hasConversation: false, channelToday: 9 }),
        emptyStats(),
        T0,
        loose,
      ),
    ).toBeNull();
  });

  it('stops before a budget would be exceeded', () => {
    const d = live(campaign({ id: 'c2', budget: { total_micros: 10_000, daily_micros: 4_000 } }));
    const price = impressionPrice(d, emptyStats()); // 2000
    expect(price).toBe(2000);
    const at = (spentTotal: number, spentDay: number) =>
      ineligibility(
        d,
        'whatsapp',
        user(),
        { ...emptyStats(), spentTotal, spentDay, day: T0 / DAY_MS },
        T0,
        policy,
      );
    expect(at(2000, 2000)).toBeNull();
    expect(at(4000, 4000)).toBe('daily_budget_exhausted');
    expect(at(8001, 0)).toBe('total_budget_exhausted');
    // Yesterday's spend does not count against today.
    expect(
      ineligibility(
        d,
        'whatsapp',
        user(),
        { ...emptyStats(), spentTotal: 4000, spentDay: 4000, day: T0 / DAY_MS - 1 },
        T0,
        policy,
      ),
    ).toBeNull();
  });

  it("matches all / any / none targeting, by segment indexes or by the bits of a business's segments", () => {
    const member = (s: number[]) => ({
      inSegment: (i: number) => s.includes(i),
      segments: s.reduce((m, i) => m | (1 << i), 0),
      mentions: () => false,
    });
    const t = { segAll: [0, 1], segAny: [2, 3], segNone: [4], kwAny: null, kwNone: null };
    for (const segMask of [null, { all: 0b11, any: 0b1100, none: 0b10000 }]) {
      const c = { ...t, segMask };
      expect(targetingMatches(c, member([0, 1, 3]))).toBe(true);
      expect(targetingMatches(c, member([0, 3]))).toBe(false);
      expect(targetingMatches(c, member([0, 1]))).toBe(false);
      expect(targetingMatches(c, member([0, 1, 2, 4]))).toBe(false);
    }
  });

  it('targets by the segments a user is in, whether a business targets up to 32 segments or more', () => {
    const rng = seededRng(31);
    const pick = (n: number, of: number) =>
      Array.from({ length: n }, () => `seg_${Math.floor(rng() * of)}`).filter(
        (x, i, l) => l.indexOf(x) === i,
      );
    // b_small's campaigns target 32 segments between them (the last one all 32, the most one word
    // of bits holds); b_large's target up to 60.
    const everySmall = Array.from({ length: 32 }, (_, i) => `seg_${i}`);
    const campaigns = ['b_small', 'b_large'].flatMap((business_id) =>
      Array.from({ length: 30 }, (_, i) => {
        const of = business_id === 'b_small' ? 32 : 60;
        if (business_id === 'b_small' && i === 29)
          return campaign({ id: 'b_small_all', business_id, targeting: { segments_none: everySmall } });
        return campaign({
          id: `${business_id}_${i}`,
          business_id,
          targeting: {
            ...(i % 3 === 0 ? {} : { segments_all: pick(1 + (i % 2), of) }),
            ...(i % 4 === 0 ? {} : { segments_any: pick(1 + (i % 3), of) }),
            ...(i % 5 === 0 ? {} : { segments_none: pick(1, of) }),
          },
        });
      }),
    );
    const s = new DecisionState();
    s.setCampaigns(campaigns);
    // Membership set before the index grows past its first room (32,768 users) is kept.
    s.setMember('seg_40', 'early', true);
    for (let i = 0; i < 40_000; i++) s.noteConversation('b_large', `filler${i}`);
    const members = new Map<string, Set<string>>([['early', new Set(['seg_40'])]]);
    for (let u = 0; u < 200; u++) {
      const segs = new Set(pick(8, 60));
      members.set(`u${u}`, segs);
      for (const seg of segs) s.setMember(seg, `u${u}`, true);
    }
    expect(s.campaignsOf('b_small').every((c) => c.segMask !== null)).toBe(true);
    expect(s.campaign('b_small_all')?.segMask?.none).toBe(-1); // all 32 bits
    expect(s.campaignsOf('b_large').every((c) => c.segMask === null)).toBe(true);
    let matched = 0;
    for (const c of campaigns) {
      const t = c.targeting;
      for (const [u, segs] of members) {
        const expected =
          (t.segments_all ?? []).every((x) => segs.has(x)) &&
          (!t.segments_any?.length || t.segments_any.some((x) => segs.has(x))) &&
          !(t.segments_none ?? []).some((x) => segs.has(x));
        const live = s.campaign(c.id);
        const view = s.view(u, c.business_id, 'whatsapp', `t_${u}`, T0);
        expect(live && targetingMatches(live, view), `${c.id} for ${u}`).toBe(expected);
        if (expected) matched++;
      }
    }
    expect(matched).toBeGreaterThan(100);
    // A user the engine has never seen is in no segment.
    const nobody = s.view('u_unknown', 'b_small', 'whatsapp', 't_x', T0);
    for (const c of s.campaignsOf('b_small'))
      expect(targetingMatches(c, nobody)).toBe(
        c.source.targeting.segments_all === undefined && c.source.targeting.segments_any === undefined,
      );
  });

  it('matches keywords any / none against what the conversation mentions', () => {
    const said = (words: string[]) => ({
      inSegment: () => false,
      segments: 0,
      mentions: (set: ReadonlySet<string>) => words.some((w) => set.has(w)),
    });
    const t = {
      segAll: [],
      segAny: [],
      segNone: [],
      segMask: null,
      kwAny: new Set(['haircut', 'beard']),
      kwNone: new Set(['refund']),
    };
    expect(targetingMatches(t, said(['beard']))).toBe(true);
    expect(targetingMatches(t, said(['nails']))).toBe(false);
    expect(targetingMatches(t, said(['beard', 'refund']))).toBe(false);
    expect(targetingMatches({ ...t, kwAny: null }, said([]))).toBe(true);
  });

  it('prices CPM per thousand and CPC by the estimated click rate', () => {
    expect(impressionPrice({ bid: { kind: 'cpm', micros: 5_000_000 } }, emptyStats())).toBe(5000);
    const cpc = { bid: { kind: 'cpc' as const, micros: 1_000_000 } };
    expect(impressionPrice(cpc, { served: 100, clicks: 9 })).toBe(50_000);
    expect(impressionPrice(cpc, { served: 0, clicks: 0 })).toBe(10_000);
  });
});

describe('pacing', () => {
  it('serves behind plan and throttles ahead of it across a band', () => {
    expect(aheadProbability(50, 100, 10)).toBe(1);
    expect(aheadProbability(105, 100, 10)).toBeCloseTo(0.5);
    expect(aheadProbability(120, 100, 10)).toBe(0);
  });

  it('plans the daily budget over the day and the total over the flight', () => {
    const c = {
      pacing: 'even' as const,
      startMs: T0 - 10 * DAY_MS,
      endMs: T0 + 10 * DAY_MS,
      totalBudget: 20_000_000,
      dailyBudget: 1_000_000,
    };
    const noon = T0 + DAY_MS / 2;
    const stats = (spentDay: number, spentTotal = 10_000_000) => ({
      ...emptyStats(),
      spentDay,
      spentTotal,
      day: Math.floor(noon / DAY_MS),
    });
    expect(serveProbability(c, stats(400_000), noon, 1000)).toBe(1);
    expect(serveProbability(c, stats(502_500), noon, 1000)).toBeCloseTo(0.5);
    expect(serveProbability(c, stats(600_000), noon, 1000)).toBe(0);
    // Far ahead on the flight line though on plan for the day: throttled by the flight.
    expect(serveProbability(c, stats(500_000, 12_000_000), noon, 1000)).toBe(0);
    expect(serveProbability({ ...c, pacing: 'asap' }, stats(900_000), noon, 1000)).toBe(1);
  });
});

describe('ranking', () => {
  it('values CPM at bid/1000 and CPC at bid × a posterior draw', () => {
    const rng = seededRng(1);
    expect(impressionValue({ bid: { kind: 'cpm', micros: 3_000_000 } }, emptyStats(), rng)).toBe(3000);
    const draws = Array.from({ length: 4000 }, () =>
      impressionValue({ bid: { kind: 'cpc', micros: 1_000_000 } }, { served: 1000, clicks: 50 }, rng),
    );
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(48_000);
    expect(mean).toBeLessThan(54_000);
  });

  it('samples Beta with the right mean for small shapes', () => {
    const rng = seededRng(7);
    const n = 20_000;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sampleBeta(0.5, 1.5, rng);
    expect(sum / n).toBeCloseTo(0.25, 1);
  });
});

describe('decide', () => {
  const ev = (type: string, user: string, props: Record<string, unknown> = {}, at = T0 - 1000) => ({
    event_id: `${type}-${user}-${at}`,
    type: type as never,
    occurred_at: new Date(at).toISOString(),
    business_id: 'b1',
    user_id: user,
    thread_id: `t_b1_${user}`,
    channel: 'whatsapp' as const,
    props,
  });

  it('draws no click rate for a CPC campaign whose bid cannot beat the best so far, unless explaining', () => {
    const s = new DecisionState();
    s.setCampaigns([
      campaign({ id: 'cpm', bid: { cpm_micros: 9_000_000 } }),
      campaign({ id: 'low_cpc', bid: { cpc_micros: 9000 } }),
      campaign({ id: 'high_cpc', bid: { cpc_micros: 900_000 } }),
    ]);
    applyEvent(s, ev('message.received', 'u1'));
    let draws = 0;
    const base = seededRng(5);
    const rng = () => {
      draws++;
      return base();
    };
    const req = { user_id: 'u1', business_id: 'b1', channel: 'whatsapp' };
    decide(s, req, {
      nowMs: T0,
      rng,
      policy: { ...policy, channel: { ...policy.channel, dailyLimit: null } },
    });
    const plain = draws;
    // Only the CPC campaign that could still win (900,000 × a click rate > 9000) was drawn for.
    expect(plain).toBeGreaterThan(0);
    draws = 0;
    decide(
      s,
      { ...req, user_id: 'u2' },
      {
        nowMs: T0,
        rng,
        policy: { ...policy, channel: { ...policy.channel, dailyLimit: null, requireConversation: false } },
      },
    );
    expect(draws).toBe(plain);
    draws = 0;
    const explained = decide(
      s,
      { ...req, user_id: 'u3', explain: true },
      {
        nowMs: T0,
        rng,
        policy: { ...policy, channel: { ...policy.channel, dailyLimit: null, requireConversation: false } },
      },
    );
    expect(draws).toBeGreaterThan(plain);
    expect(explained.candidates.find((c) => c.campaign_id === 'low_cpc')?.value_micros).toBeLessThanOrEqual(
      9000,
    );
  });

  it('offers the best eligible campaign, holds it at once, and explains the others', () => {
    const s = new DecisionState({ holdMs: 2 * 3600_000 });
    s.setCampaigns([
      campaign({ id: 'cheap', bid: { cpm_micros: 1_000_000 } }),
      campaign({ id: 'rich', bid: { cpm_micros: 9_000_000 } }),
      campaign({ id: 'paused', status: 'paused' }),
      campaign({ id: 'other', business_id: 'b2' }),
    ]);
    applyEvent(s, ev('message.received', 'u1'));
    const req = { user_id: 'u1', business_id: 'b1', channel: 'whatsapp', explain: true };
    const r = decide(s, req, { nowMs: T0, rng: seededRng(3), policy });
    expect(r.decision?.campaign.id).toBe('rich');
    expect(r.decision?.priceMicros).toBe(9000);
    expect(Object.fromEntries(r.candidates.map((c) => [c.campaign_id, c.reason]))).toEqual({
      cheap: 'outranked',
      rich: 'chosen',
      paused: 'paused',
    });
    // Held, not yet an impression: it counts against the budget, not as spend.
    expect(s.statsOf('rich')).toMatchObject({ served: 0, spentTotal: 0, heldTotal: 9000, heldDay: 9000 });
    // The same user again today on WhatsApp: the channel's daily limit.
    const again = decide(s, req, { nowMs: T0 + 3600_000, rng: seededRng(3), policy });
    expect(again.decision).toBeNull();
    expect(new Set(again.candidates.map((c) => c.reason))).toEqual(
      new Set(['channel_daily_limit', 'paused']),
    );
    // Its impression from the bus ends the hold; a repeated confirmation does not count twice.
    const impression = ev(
      'sponsored.served',
      'u1',
      { decision_id: r.decision!.decisionId, campaign_id: 'rich', price_micros: 9000 },
      T0,
    );
    applyEvent(s, impression);
    applyEvent(s, impression);
    expect(s.statsOf('rich')).toMatchObject({ served: 1, spentTotal: 9000, heldTotal: 0, heldDay: 0 });
    expect(s.offers.held).toBe(0);
    const third = decide(s, req, { nowMs: T0 + 3600_000, rng: seededRng(3), policy });
    expect(third.decision).toBeNull();
    // Not confirmed within its hold, an offer is released and frees what it held.
    const later = decide(
      s,
      { ...req, user_id: 'u3' },
      { nowMs: T0 + 3 * 3600_000, rng: seededRng(3), policy },
    );
    expect(later.decision).toBeNull(); // u3 never talked to b1
    applyEvent(s, ev('message.received', 'u4'));
    const u4 = decide(s, { ...req, user_id: 'u4' }, { nowMs: T0 + 3 * 3600_000, rng: seededRng(3), policy });
    expect(s.statsOf('rich')).toMatchObject({ heldTotal: 9000 });
    decide(s, { ...req, user_id: 'u3' }, { nowMs: T0 + 6 * 3600_000, rng: seededRng(3), policy });
    expect(u4.decision).not.toBeNull();
    expect(s.statsOf('rich')).toMatchObject({ served: 1, heldTotal: 0, heldDay: 0 });
    expect(s.offers.held).toBe(0);
    // Served by another process: counts.
    applyEvent(
      s,
      ev('sponsored.served', 'u2', { decision_id: 'd_other', campaign_id: 'rich', price_micros: 9000 }, T0),
    );
    applyEvent(s, ev('sponsored.clicked', 'u2', { decision_id: 'd_other', campaign_id: 'rich' }, T0));
    applyEvent(s, ev('sponsored.clicked', 'u2', { decision_id: 'd_other', campaign_id: 'rich' }, T0));
    expect(s.statsOf('rich')).toMatchObject({ served: 2, clicks: 1, spentTotal: 18_000 });
  });

  it('decides the same with and without an explanation', () => {
    const build = () => {
      const s = new DecisionState();
      const cpc = [0, 1, 2].map((i) =>
        campaign({
          id: `c${i}`,
          bid: { cpc_micros: 1_000_000 },
          pacing: i === 1 ? 'even' : 'asap',
          budget: { total_micros: 1e9, daily_micros: 1e6 },
        }),
      );
      // Campaigns that can never serve on webchat, between the others: a plain decision skips them.
      s.setCampaigns([
        cpc[0],
        campaign({ id: 'paused', status: 'paused', bid: { cpc_micros: 9_000_000 } }),
        cpc[1],
        campaign({ id: 'sms_only', targeting: { channels: ['sms'] }, bid: { cpc_micros: 9_000_000 } }),
        cpc[2],
      ]);
      return s;
    };
    expect(
      build()
        .servableCampaignsOf('b1', 'webchat')
        .map((c) => c.id),
    ).toEqual(['c0', 'c1', 'c2']);
    expect(
      build()
        .servableCampaignsOf('b1', 'sms')
        .map((c) => c.id),
    ).toEqual(['c0', 'c1', 'sms_only', 'c2']);
    expect(build().servableCampaignsOf('b_none', 'webchat')).toEqual([]);
    const [a, b] = [build(), build()];
    const [ra, rb] = [seededRng(5), seededRng(5)];
    const loose: Policy = { quietPeriodMs: 0, channel: { requireConversation: false, dailyLimit: null } };
    for (let i = 0; i < 300; i++) {
      const req = { user_id: `u${i}`, business_id: 'b1', channel: 'webchat' };
      const now = T0 + i * 60_000;
      const x = decide(a, req, { nowMs: now, rng: ra, policy: loose });
      const y = decide(b, { ...req, explain: true }, { nowMs: now, rng: rb, policy: loose });
      expect(x.decision?.campaign.id).toBe(y.decision?.campaign.id);
      expect(x.candidates).toEqual([]);
      expect(y.candidates.filter((c) => c.reason === 'chosen').length).toBe(y.decision ? 1 : 0);
      if (i % 7 === 0 && x.decision) {
        a.noteClicked(x.decision.decisionId, x.decision.campaign.id);
        b.noteClicked(y.decision!.decisionId, y.decision!.campaign.id);
      }
    }
  });

  it('never serves opted-out, blocked or unknown users, and honours a later opt-in', () => {
    const s = new DecisionState();
    s.setCampaigns([campaign({ id: 'c' })]);
    for (const u of ['u1', 'u2']) applyEvent(s, ev('message.received', u));
    applyEvent(s, ev('optout', 'u1', { scope: 'marketing' }, T0 - 500));
    applyEvent(s, ev('conversation.blocked', 'u2'));
    const d = (u: string) =>
      decide(
        s,
        { user_id: u, business_id: 'b1', channel: 'whatsapp', explain: true },
        { nowMs: T0, rng: seededRng(1), policy },
      );
    expect(d('u1').candidates[0].reason).toBe('opted_out');
    expect(d('u2').candidates[0].reason).toBe('blocked');
    expect(d('u3').candidates[0].reason).toBe('no_conversation');
    applyEvent(s, ev('optin', 'u1', {}, T0 - 900)); // older than the opt-out: ignored
    expect(d('u1').candidates[0].reason).toBe('opted_out');
    applyEvent(s, ev('optin', 'u1', {}, T0 - 100));
    expect(d('u1').decision?.campaign.id).toBe('c');
  });

  it('follows segment membership as it changes', () => {
    const s = new DecisionState();
    s.setCampaigns([campaign({ id: 'c', targeting: { segments_all: ['seg_a'], segments_none: ['seg_x'] } })]);
    applyEvent(s, ev('message.received', 'u1'));
    const d = () =>
      decide(
        s,
        { user_id: 'u1', business_id: 'b1', channel: 'sms', explain: true },
        {
          nowMs: T0,
          rng: seededRng(1),
          policy: { ...policy, channel: { requireConversation: true, dailyLimit: null }, quietPeriodMs: 0 },
        },
      );
    expect(d().candidates[0].reason).toBe('targeting_not_matched');
    s.setMember('seg_a', 'u1', true);
    expect(d().candidates[0].reason).toBe('chosen');
    s.setMember('seg_x', 'u1', true);
    expect(d().candidates[0].reason).toBe('targeting_not_matched');
    s.setMember('seg_x', 'u1', false);
    for (let i = 0; i < 3000; i++) s.setMember('seg_a', `filler${i}`, true); // grows the bitsets
    expect(d().candidates[0].reason).toBe('chosen');
    expect(d().candidates[0].reason).toBe('chosen');
    expect(d().candidates[0].reason).toBe('frequency_cap'); // max 3 a day
  });
});

describe('holdouts', () => {
  const ev = (type: string, user: string) => ({
    event_id: `${type}-${user}`,
    type: type as never,
    occurred_at: new Date(T0 - 1000).toISOString(),
    business_id: 'b1',
    user_id: user,
    thread_id: `t_b1_${user}`,
    channel: 'webchat' as const,
    props: {},
  });
  it('records ghost offers for control users and answers with the next best; marks treatment offers', () => {
    const s = new DecisionState();
    s.setCampaigns([
      campaign({ id: 'lift', bid: { cpm_micros: 9_000_000 }, holdout: 0.3 }),
      campaign({ id: 'plain', bid: { cpm_micros: 1_000_000 } }),
    ]);
    const groups = { control: 0, treatment: 0 };
    for (let i = 0; i < 2000; i++) {
      const user = `h${i}`;
      applyEvent(s, { ...ev('message.received', user), thread_id: `t_b1_${user}` });
      const r = decide(
        s,
        { user_id: user, business_id: 'b1', channel: 'webchat' },
        { nowMs: T0, rng: seededRng(i), policy },
      );
      const control = inHoldout('lift', user, 0.3);
      expect(r.decision?.campaign.id).toBe(control ? 'plain' : 'lift');
      expect(r.withheld).toEqual([
        expect.objectContaining({
          campaignId: 'lift',
          priceMicros: 9000,
          group: control ? 'control' : 'treatment',
          ...(control ? {} : { decisionId: r.decision?.decisionId }),
        }),
      ]);
      groups[control ? 'control' : 'treatment']++;
    }
    expect(groups.control / 2000).toBeGreaterThan(0.26);
    expect(groups.control / 2000).toBeLessThan(0.34);
    // Control users count against no budget: only treatment offers are held for the campaign.
    expect(s.statsOf('lift').heldTotal).toBe(groups.treatment * 9000);
    // A campaign without a holdout records nothing; explain names the holdout.
    const control = Array.from({ length: 50 }, (_, i) => `h${i}`).find((u) => inHoldout('lift', u, 0.3))!;
    const fresh = new DecisionState();
    fresh.setCampaigns([campaign({ id: 'lift', bid: { cpm_micros: 9_000_000 }, holdout: 0.3 })]);
    applyEvent(fresh, { ...ev('message.received', control), thread_id: `t_b1_${control}` });
    const explained = decide(
      fresh,
      { user_id: control, business_id: 'b1', channel: 'webchat', explain: true },
      { nowMs: T0, rng: seededRng(1), policy },
    );
    expect(explained.decision).toBeNull();
    expect(explained.candidates).toEqual([
      expect.objectContaining({ campaign_id: 'lift', reason: 'holdout' }),
    ]);
    expect(explained.withheld?.[0]).toMatchObject({ group: 'control' });
    expect(explained.withheld?.[0].decisionId).toMatch(/^w_/);
  });
});

describe('impressions in memory', () => {
  it('keeps impressions only for the longest window they count in', () => {
    const s = new DecisionState();
    s.setCampaigns([campaign({ id: 'c', frequency_cap: { max: 1, per_seconds: 2 * 86_400 } })]);
    const served = (user: string, atMs: number) => ({
      event_id: `s-${user}`,
      type: 'sponsored.served' as never,
      occurred_at: new Date(atMs).toISOString(),
      business_id: 'b1',
      user_id: user,
      thread_id: `t_b1_${user}`,
      channel: 'webchat' as const,
      props: { decision_id: `d-${user}`, campaign_id: 'c', price_micros: 10 },
    });
    applyEvent(s, served('now', T0));
    applyEvent(s, served('yesterday', T0 - 1.5 * DAY_MS)); // within the 2-day cap window: kept
    applyEvent(s, served('last-week', T0 - 7 * DAY_MS)); // older than every window: not kept
    expect(s.impressions.made).toBe(2);
    expect(s.view('yesterday', 'b1', 'webchat', 't_b1_yesterday', T0).servesSince('c', T0 - 2 * DAY_MS)).toBe(
      1,
    );
    // Spend counts every impression all the same.
    expect(s.statsOf('c')).toMatchObject({ served: 3, spentTotal: 30 });
  });
});
