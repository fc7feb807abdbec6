import { describe, expect, it } from 'vitest';
import { applyEvent, type Decision, decide } from '../api/decisions/engine.ts';
import { type Rng, seededRng } from '../api/decisions/rng.ts';
import { DecisionState, offerFacts } from '../api/decisions/state.ts';
import { DAY_MS, type DecisionRequest, type Policy } from '../api/decisions/types.ts';
import type { Campaign } from '../core/campaigns/schema.ts';
import { type ChannelPolicy, DEFAULT_CHANNEL_POLICY } from '../core/config.ts';
import { CHANNELS } from '../core/events/schema.ts';
import { impressionEvent, type OfferFacts, signOffer, verifyOffer } from '../core/offers/token.ts';

// The decision engine driven directly on a simulated clock with seeded randomness: days of
// requests in seconds of test time. Every property is checked against a ledger the test keeps
// itself from the decisions it got, not against the engine's own counters.

const START = Date.parse('2026-05-04T00:00:00Z');
const HOUR = 3_600_000;

function campaign(over: Partial<Campaign> & { id: string }): Campaign {
  return {
    business_id: 'b1',
    name: over.id,
    status: 'active',
    creative: { text: over.id },
    targeting: {},
    schedule: { start: new Date(START).toISOString() },
    budget: { total_micros: 1e12 },
    bid: { cpm_micros: 1_000_000 },
    frequency_cap: { max: 1000, per_seconds: 60 },
    pacing: 'asap',
    version: 1,
    created_at: new Date(START).toISOString(),
    updated_at: new Date(START).toISOString(),
    deleted: false,
    ...over,
  };
}

const exp = (rng: Rng, mean: number) => -Math.log(1 - rng()) * mean;

/** The ad server delivers the offer at once: its impression comes back from the bus. */
function deliver(state: DecisionState, d: Decision) {
  const f = d.served;
  applyEvent(state, impressionEvent(offerFacts(f)));
}
const pick = <T>(rng: Rng, xs: readonly T[]) => xs[Math.floor(rng() * xs.length)];

function event(
  type: string,
  user: string,
  business: string,
  atMs: number,
  props: Record<string, unknown> = {},
) {
  return {
    event_id: `${type}-${user}-${business}-${atMs}`,
    type: type as never,
    occurred_at: new Date(atMs).toISOString(),
    business_id: business,
    user_id: user,
    thread_id: `t_${business}_${user}`,
    channel: 'webchat' as const,
    props,
  };
}

describe('decision simulation', () => {
  it('keeps budgets, frequency caps, channel limits, quiet periods and opt-outs over three days', () => {
    const rng = seededRng(20260504);
    const state = new DecisionState();
    const campaigns = [
      campaign({
        id: 'small_cpm',
        bid: { cpm_micros: 5_000_000 },
        budget: { total_micros: 400_000, daily_micros: 150_000 },
        frequency_cap: { max: 2, per_seconds: 3600 },
      }),
      campaign({
        id: 'cpc_any',
        bid: { cpc_micros: 500_000 },
        budget: { total_micros: 3_000_000, daily_micros: 1_200_000 },
        frequency_cap: { max: 1, per_seconds: 86_400 },
        targeting: { segments_any: ['s1'] },
        pacing: 'even',
      }),
      campaign({
        id: 'even_cpm',
        bid: { cpm_micros: 2_000_000 },
        budget: { total_micros: 1_000_000, daily_micros: 300_000 },
        frequency_cap: { max: 3, per_seconds: 7200 },
        targeting: { segments_none: ['s2'] },
        pacing: 'even',
      }),
      campaign({
        id: 'b2_chat',
        business_id: 'b2',
        bid: { cpm_micros: 8_000_000 },
        budget: { total_micros: 600_000 },
        frequency_cap: { max: 3, per_seconds: 86_400 },
        targeting: { channels: ['webchat', 'sms'] },
      }),
    ];
    state.setCampaigns(campaigns);
    const byId = new Map(campaigns.map((c) => [c.id, c]));
    const users = Array.from({ length: 1500 }, (_, i) => `u${i}`);
    const optOutAt = new Map<string, number>(); // `${b}:${u}` → when
    const blocked = new Set<string>();
    for (const u of users) {
      if (rng() < 0.4) state.setMember('s1', u, true);
      if (rng() < 0.2) state.setMember('s2', u, true);
      for (const b of ['b1', 'b2']) {
        if (rng() < 0.9) applyEvent(state, event('message.received', u, b, START - 1000));
        if (rng() < 0.02) {
          blocked.add(`${b}:${u}`);
          applyEvent(state, event('conversation.blocked', u, b, START - 500));
        }
        if (rng() < 0.1) optOutAt.set(`${b}:${u}`, START + rng() * 3 * DAY_MS);
      }
    }
    const pendingOptOuts = [...optOutAt.entries()].sort((a, b) => a[1] - b[1]);
    const quietPeriodMs = 1800_000;
    const policies: Record<string, ChannelPolicy> = DEFAULT_CHANNEL_POLICY;

    type Served = {
      campaign: string;
      user: string;
      business: string;
      channel: string;
      thread: string;
      at: number;
      price: number;
    };
    const ledger: Served[] = [];
    let now = START;
    let requests = 0;
    while (now < START + 3 * DAY_MS) {
      now += exp(rng, 15_000);
      while (pendingOptOuts.length && pendingOptOuts[0][1] <= now) {
        const [key, at] = pendingOptOuts.shift()!;
        const [b, u] = key.split(':');
        applyEvent(state, event('optout', u, b, at, { scope: 'marketing' }));
      }
      const req: DecisionRequest = {
        user_id: pick(rng, users),
        business_id: rng() < 0.75 ? 'b1' : 'b2',
        channel: pick(rng, CHANNELS),
      };
      requests++;
      const policy: Policy = { quietPeriodMs, channel: policies[req.channel] };
      const { decision } = decide(state, req, { nowMs: now, rng, policy });
      if (!decision) continue;
      const f = decision.served;
      ledger.push({
        campaign: f.campaignId,
        user: f.userId,
        business: f.businessId,
        channel: f.channel,
        thread: f.threadId,
        at: now,
        price: f.priceMicros,
      });
      // The decision comes back from the bus: it must not count twice.
      applyEvent(state, {
        ...event('sponsored.served', f.userId, f.businessId, now, {
          decision_id: f.decisionId,
          campaign_id: f.campaignId,
          price_micros: f.priceMicros,
        }),
        thread_id: f.threadId,
        channel: f.channel as never,
      });
      if (rng() < 0.04) state.noteClicked(f.decisionId, f.campaignId);
    }
    expect(requests).toBeGreaterThan(15_000);
    expect(ledger.length).toBeGreaterThan(300);

    for (const c of campaigns) {
      const mine = ledger.filter((s) => s.campaign === c.id);
      const maxPrice = Math.max(0, ...mine.map((s) => s.price));
      const total = mine.reduce((a, s) => a + s.price, 0);
      expect(total, c.id).toBeLessThanOrEqual(c.budget.total_micros + maxPrice);
      if (c.budget.daily_micros !== undefined) {
        const perDay = new Map<number, number>();
        for (const s of mine)
          perDay.set(Math.floor(s.at / DAY_MS), (perDay.get(Math.floor(s.at / DAY_MS)) ?? 0) + s.price);
        for (const v of perDay.values())
          expect(v, c.id).toBeLessThanOrEqual(c.budget.daily_micros + maxPrice);
      }
      // Frequency: no window of per_seconds holds more than max serves to one user.
      const perUser = new Map<string, number[]>();
      for (const s of mine) perUser.set(s.user, [...(perUser.get(s.user) ?? []), s.at]);
      for (const times of perUser.values())
        for (let i = c.frequency_cap.max; i < times.length; i++)
          expect(times[i] - times[i - c.frequency_cap.max]).toBeGreaterThanOrEqual(
            c.frequency_cap.per_seconds * 1000,
          );
    }
    // The budgets were reached, so the caps above were really tested.
    const spent = (id: string) => ledger.filter((s) => s.campaign === id).reduce((a, s) => a + s.price, 0);
    expect(spent('small_cpm')).toBeGreaterThan(400_000 - 5000 * 2);
    expect(spent('b2_chat')).toBeGreaterThan(600_000 - 8000 * 2);

    const perChannelDay = new Map<string, number>();
    const lastByThread = new Map<string, number>();
    for (const s of ledger) {
      const key = `${s.user}:${s.business}:${s.channel}:${Math.floor(s.at / DAY_MS)}`;
      perChannelDay.set(key, (perChannelDay.get(key) ?? 0) + 1);
      const limit = policies[s.channel].dailyLimit;
      if (limit !== null) expect(perChannelDay.get(key)).toBeLessThanOrEqual(limit);
      const last = lastByThread.get(s.thread);
      if (last !== undefined) expect(s.at - last).toBeGreaterThanOrEqual(quietPeriodMs);
      lastByThread.set(s.thread, s.at);
      const out = optOutAt.get(`${s.business}:${s.user}`);
      if (out !== undefined) expect(s.at).toBeLessThan(out);
      expect(blocked.has(`${s.business}:${s.user}`)).toBe(false);
      const c = byId.get(s.campaign)!;
      expect(c.business_id).toBe(s.business);
      if (c.targeting.channels) expect(c.targeting.channels).toContain(s.channel);
    }
    // WhatsApp and Messenger did reach their limit of one a day somewhere.
    expect([...perChannelDay.entries()].some(([k, n]) => /:(whatsapp|messenger):/.test(k) && n === 1)).toBe(
      true,
    );
  });

  it('with offers confirmed 0–120 s later and 10% never delivered, keeps every limit and frees released offers', () => {
    const rng = seededRng(20260601);
    const holdMs = 300_000;
    const state = new DecisionState({ holdMs });
    const key = Buffer.alloc(32, 3);
    const campaigns = [
      campaign({
        id: 'cpm_small',
        bid: { cpm_micros: 6_000_000 },
        budget: { total_micros: 380_000, daily_micros: 200_000 },
        frequency_cap: { max: 2, per_seconds: 3600 },
      }),
      campaign({
        id: 'cpc_kw',
        bid: { cpc_micros: 400_000 },
        budget: { total_micros: 2_000_000, daily_micros: 800_000 },
        frequency_cap: { max: 1, per_seconds: 86_400 },
        targeting: { keywords_any: ['haircut'] },
      }),
      campaign({
        id: 'cpm_even',
        bid: { cpm_micros: 3_000_000 },
        budget: { total_micros: 900_000, daily_micros: 300_000 },
        frequency_cap: { max: 3, per_seconds: 7200 },
        pacing: 'even',
      }),
    ];
    state.setCampaigns(campaigns);
    const users = Array.from({ length: 800 }, (_, i) => `u${i}`);
    for (const u of users) applyEvent(state, event('message.received', u, 'b1', START - 1000));
    const quietPeriodMs = 1800_000;
    const policies: Record<string, ChannelPolicy> = DEFAULT_CHANNEL_POLICY;

    type Offer = { token: string; at: number; deliverAt: number | null; facts: OfferFacts };
    const offers: Offer[] = [];
    const pending: Offer[] = []; // confirmations yet to arrive, in arrival order
    const impressions: OfferFacts[] = [];
    let now = START;
    const deliverDue = () => {
      pending.sort((a, b) => a.deliverAt! - b.deliverAt!);
      while (pending.length && pending[0].deliverAt! <= now) {
        const o = pending.shift()!;
        const check = verifyOffer(key, o.token, o.deliverAt!, holdMs);
        expect(check.ok).toBe(true);
        if (!check.ok) continue;
        impressions.push(check.facts);
        const e = impressionEvent(check.facts);
        applyEvent(state, e);
        if (rng() < 0.3) applyEvent(state, e); // a repeated confirmation is the same impression
      }
    };
    while (now < START + 2 * DAY_MS) {
      now += Math.round(exp(rng, 20_000));
      deliverDue();
      const req: DecisionRequest = {
        user_id: pick(rng, users),
        business_id: 'b1',
        channel: pick(rng, CHANNELS),
        context: rng() < 0.3 ? { keywords: ['haircut'] } : undefined,
      };
      const policy: Policy = { quietPeriodMs, channel: policies[req.channel] };
      const { decision } = decide(state, req, { nowMs: now, rng, policy });
      if (!decision) continue;
      const f = decision.served;
      const facts: OfferFacts = offerFacts(f);
      const o: Offer = {
        token: signOffer(key, facts),
        at: now,
        deliverAt: rng() < 0.1 ? null : now + Math.round(rng() * 120_000),
        facts,
      };
      offers.push(o);
      if (o.deliverAt !== null) pending.push(o);
    }
    now += 200_000;
    deliverDue();
    expect(offers.length).toBeGreaterThan(300);
    expect(impressions.length).toBe(offers.filter((o) => o.deliverAt !== null).length);

    // Budgets and daily budgets: impressions never spend past them, and they were reached.
    for (const c of campaigns) {
      const mine = impressions.filter((i) => i.campaign_id === c.id);
      const total = mine.reduce((a, i) => a + i.price_micros, 0);
      expect(total, c.id).toBeLessThanOrEqual(c.budget.total_micros);
      const perDay = new Map<number, number>();
      for (const i of mine) {
        const d = Math.floor(i.at_ms / DAY_MS);
        perDay.set(d, (perDay.get(d) ?? 0) + i.price_micros);
      }
      for (const v of perDay.values()) expect(v, c.id).toBeLessThanOrEqual(c.budget.daily_micros!);
      // Spend as the engine counts it is the impressions' prices, to the micro.
      expect(state.statsOf(c.id).spentTotal, c.id).toBe(total);
      expect(state.statsOf(c.id).served, c.id).toBe(mine.length);
      const perUser = new Map<string, number[]>();
      for (const i of mine) perUser.set(i.user_id, [...(perUser.get(i.user_id) ?? []), i.at_ms]);
      for (const times of perUser.values())
        for (let k = c.frequency_cap.max; k < times.length; k++)
          expect(times[k] - times[k - c.frequency_cap.max]).toBeGreaterThanOrEqual(
            c.frequency_cap.per_seconds * 1000,
          );
    }
    expect(state.statsOf('cpm_small').spentTotal).toBeGreaterThan(380_000 - 6000 * 2);
    // Keyword campaign: only ever offered when the conversation mentioned the keyword.
    expect(impressions.some((i) => i.campaign_id === 'cpc_kw')).toBe(true);

    // Quiet period and channel daily limits hold over everything offered, delivered or not.
    const byThread = new Map<string, number[]>();
    const perChannelDay = new Map<string, number>();
    for (const o of offers) {
      byThread.set(o.facts.thread_id, [...(byThread.get(o.facts.thread_id) ?? []), o.at]);
      const k = `${o.facts.user_id}:${o.facts.channel}:${Math.floor(o.at / DAY_MS)}`;
      perChannelDay.set(k, (perChannelDay.get(k) ?? 0) + 1);
    }
    // ...except where an offer was released: its capacity went to a later offer.
    const released = offers.filter((o) => o.deliverAt === null);
    let reused = 0;
    for (const times of byThread.values())
      for (let k = 1; k < times.length; k++) {
        if (times[k] - times[k - 1] >= quietPeriodMs) continue;
        const earlier = released.find((o) => o.at === times[k - 1]);
        expect(
          earlier,
          'only a released offer lets a thread be offered again inside the quiet period',
        ).toBeDefined();
        expect(times[k] - times[k - 1]).toBeGreaterThanOrEqual(holdMs);
        reused++;
      }
    expect(reused).toBeGreaterThan(0);
    const delivered = new Map<string, number>();
    for (const i of impressions) {
      const k = `${i.user_id}:${i.channel}:${Math.floor(i.at_ms / DAY_MS)}`;
      delivered.set(k, (delivered.get(k) ?? 0) + 1);
      const limit = policies[i.channel].dailyLimit;
      if (limit !== null) expect(delivered.get(k)).toBeLessThanOrEqual(limit);
    }
    const lastDelivered = new Map<string, number>();
    for (const i of [...impressions].sort((a, b) => a.at_ms - b.at_ms)) {
      const last = lastDelivered.get(i.thread_id);
      if (last !== undefined) expect(i.at_ms - last).toBeGreaterThanOrEqual(quietPeriodMs);
      lastDelivered.set(i.thread_id, i.at_ms);
    }
    // Nothing is left held once every hold has ended.
    decide(
      state,
      { user_id: 'nobody', business_id: 'b1', channel: 'sms' },
      {
        nowMs: now + holdMs + 120_000,
        rng,
        policy: { quietPeriodMs, channel: policies.sms },
      },
    );
    expect(state.offers.held).toBe(0);
    for (const c of campaigns) expect(state.statsOf(c.id)).toMatchObject({ heldTotal: 0 });
  });

  it('with two processes, over-delivery stays within what the other process holds and has not yet seen', () => {
    const rng = seededRng(77);
    const holdMs = 300_000;
    const busDelayMs = 500;
    const procs = [new DecisionState({ holdMs }), new DecisionState({ holdMs })];
    const campaigns = [
      campaign({ id: 'tight', bid: { cpm_micros: 5_000_000 }, budget: { total_micros: 300_000 } }),
      campaign({
        id: 'daily',
        bid: { cpm_micros: 2_000_000 },
        budget: { total_micros: 10_000_000, daily_micros: 100_000 },
      }),
    ];
    const users = Array.from({ length: 400 }, (_, i) => `u${i}`);
    for (const st of procs) {
      st.setCampaigns(campaigns);
      for (const u of users) applyEvent(st, event('message.received', u, 'b1', START - 1000));
    }
    const policy: Policy = { quietPeriodMs: 0, channel: { requireConversation: true, dailyLimit: null } };
    // Impressions reach each process from the bus busDelayMs after they are confirmed.
    type InFlight = { at: number; facts: OfferFacts; seenBy: Set<number> };
    const bus: InFlight[] = [];
    const pending: { deliverAt: number; facts: OfferFacts }[] = [];
    const spent = new Map<string, number>();
    let worst = 0; // the largest excess the bound allows at any decision
    let now = START;
    while (now < START + DAY_MS) {
      now += Math.round(exp(rng, 4000));
      pending.sort((a, b) => a.deliverAt - b.deliverAt);
      while (pending.length && pending[0].deliverAt <= now) {
        const p = pending.shift()!;
        bus.push({ at: p.deliverAt + busDelayMs, facts: p.facts, seenBy: new Set() });
        spent.set(p.facts.campaign_id, (spent.get(p.facts.campaign_id) ?? 0) + p.facts.price_micros);
      }
      for (const m of bus)
        for (const [i, st] of procs.entries())
          if (m.at <= now && !m.seenBy.has(i)) {
            applyEvent(st, impressionEvent(m.facts));
            m.seenBy.add(i);
          }
      const which = rng() < 0.5 ? 0 : 1;
      const { decision } = decide(
        procs[which],
        { user_id: pick(rng, users), business_id: 'b1', channel: 'webchat' },
        { nowMs: now, rng, policy },
      );
      if (!decision) continue;
      const f = decision.served;
      // The bound: what the other process holds, and impressions this one has not seen yet.
      const other = procs[1 - which].statsOf(f.campaignId).heldTotal;
      const unseen = bus
        .filter((m) => !m.seenBy.has(which) && m.facts.campaign_id === f.campaignId)
        .reduce((a, m) => a + m.facts.price_micros, 0);
      worst = Math.max(worst, other + unseen);
      if (rng() < 0.9)
        pending.push({
          deliverAt: now + Math.round(rng() * 120_000),
          facts: offerFacts(f),
        });
    }
    const tight = spent.get('tight') ?? 0;
    expect(tight).toBeGreaterThanOrEqual(300_000 - 5000);
    expect(tight).toBeLessThanOrEqual(300_000 + worst);
    expect(worst).toBeGreaterThan(0);
    // Both processes agree on spend once every impression has reached them.
    for (const m of bus) for (const st of procs) applyEvent(st, impressionEvent(m.facts));
    expect(procs[0].statsOf('tight').spentTotal).toBe(tight);
    expect(procs[1].statsOf('tight').spentTotal).toBe(tight);
  });

  it('with even pacing, keeps hourly spend within ±20% of plan once warmed up', () => {
    const rng = seededRng(7);
    const state = new DecisionState();
    const daily = 24_000_000; // 1,000,000 an hour
    state.setCampaigns([
      campaign({
        id: 'even',
        bid: { cpm_micros: 10_000_000 }, // 10,000 a serve: 100 serves an hour
        budget: { total_micros: 10 * daily, daily_micros: daily },
        pacing: 'even',
      }),
    ]);
    const policy: Policy = { quietPeriodMs: 0, channel: { requireConversation: false, dailyLimit: null } };
    const hourly = new Map<number, number>();
    let now = START;
    const end = START + 2 * DAY_MS;
    while (now < end) {
      // Diurnal traffic between 400 and 1200 requests an hour: always more than the plan needs.
      const hourOfDay = ((now - START) / HOUR) % 24;
      const rate = 800 + 400 * Math.sin((hourOfDay / 24) * 2 * Math.PI);
      now += exp(rng, HOUR / rate);
      const { decision } = decide(
        state,
        { user_id: `u${Math.floor(rng() * 1e6)}`, business_id: 'b1', channel: 'webchat' },
        { nowMs: now, rng, policy },
      );
      if (decision) {
        deliver(state, decision);
        const h = Math.floor((now - START) / HOUR);
        hourly.set(h, (hourly.get(h) ?? 0) + decision.priceMicros);
      }
    }
    const plan = daily / 24;
    const checked: number[] = [];
    for (let h = 2; h < 48; h++) {
      if (h === 24) continue; // the first hour of a new day warms up again
      const v = hourly.get(h) ?? 0;
      checked.push(v / plan);
      expect(v, `hour ${h}`).toBeGreaterThanOrEqual(plan * 0.8);
      expect(v, `hour ${h}`).toBeLessThanOrEqual(plan * 1.2);
    }
    expect(checked.length).toBe(45);
    // Each day spends its budget but not more.
    const day = (d: number) =>
      [...hourly].filter(([h]) => Math.floor(h / 24) === d).reduce((a, [, v]) => a + v, 0);
    expect(day(0)).toBeGreaterThan(daily * 0.95);
    expect(day(0)).toBeLessThanOrEqual(daily);
    expect(day(1)).toBeLessThanOrEqual(daily);
  });

  it('Thompson sampling sends most traffic to the campaign with the best true click rate', () => {
    const rng = seededRng(99);
    const clicks = seededRng(1234);
    const state = new DecisionState();
    const trueRate: Record<string, number> = { c2: 0.02, c3: 0.03, c5: 0.05, c8: 0.08 };
    state.setCampaigns(Object.keys(trueRate).map((id) => campaign({ id, bid: { cpc_micros: 1_000_000 } })));
    const policy: Policy = { quietPeriodMs: 0, channel: { requireConversation: false, dailyLimit: null } };
    const served: string[] = [];
    let now = START;
    for (let i = 0; i < 12_000; i++) {
      now += 1000;
      const { decision } = decide(
        state,
        { user_id: `u${i}`, business_id: 'b1', channel: 'webchat' },
        { nowMs: now, rng, policy },
      );
      expect(decision).not.toBeNull();
      deliver(state, decision!);
      const id = decision!.campaign.id;
      served.push(id);
      if (clicks() < trueRate[id]) state.noteClicked(decision!.decisionId, id);
    }
    const share = (from: number, to: number) =>
      served.slice(from, to).filter((c) => c === 'c8').length / (to - from);
    // Every campaign was explored, and after 6,000 decisions the best gets at least 75%.
    for (const id of Object.keys(trueRate)) expect(served.filter((c) => c === id).length).toBeGreaterThan(30);
    expect(share(6000, 12_000)).toBeGreaterThan(0.75);
    expect(share(0, 1000)).toBeLessThan(share(6000, 12_000));
  });
});
