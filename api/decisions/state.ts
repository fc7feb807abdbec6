import type { Campaign } from '../../core/campaigns/schema.ts';
import { type CampaignStats, DAY_MS, dayOf, emptyStats, type LiveCampaign, type UserView } from './types.ts';

// The decision engine's memory: campaigns, segment membership and delivery counters. It is fed
// from the bus (membership topic, events topic) and by this process's own decisions, and read
// on every decision without any I/O.
//
// Memory: user ids are interned once to small integers; each segment is a bitset over those
// integers (1M users → 125 KB per segment), so 1M users × 20 segments cost the intern table and
// 2.5 MB of bits. Counters exist only for users who were served.

export type ServedFact = {
  decisionId: string;
  campaignId: string;
  businessId: string;
  userId: string;
  threadId: string;
  channel: string;
  priceMicros: number;
  atMs: number;
};

const NO_STATS: Readonly<CampaignStats> = Object.freeze(emptyStats());
const k2 = (a: string, b: string) => `${a}\u0000${b}`;
const k3 = (a: string, b: string, c: string) => `${a}\u0000${b}\u0000${c}`;

export class DecisionState {
  readonly users = new Map<string, number>();
  /** The next user index: not users.size, since an erased user's entry is removed. */
  private nextUser = 0;
  private readonly segIndex = new Map<string, number>();
  private segBits: Uint32Array[] = [];
  private words = 1024;
  private readonly conversations = new Map<string, Set<number>>();
  /** `${business}\0${user}` → latest optout/optin (by occurred time). */
  private readonly optState = new Map<string, { out: boolean; atMs: number }>();
  private readonly blocked = new Set<string>();
  /** user → campaign → serve times, newest last, at most the campaign's cap kept. */
  private readonly freq = new Map<string, Map<string, number[]>>();
  /** `${user}\0${business}\0${channel}` → serves on a UTC day. */
  private readonly channelDay = new Map<string, { day: number; n: number }>();
  private readonly threadLast = new Map<string, number>();
  readonly stats = new Map<string, CampaignStats>();
  private readonly clicked = new Set<string>();
  /** Decisions this process served and counted, whose echo from the bus must not count again. */
  private readonly pendingEcho = new Set<string>();
  private campaigns: LiveCampaign[] = [];
  private byBusiness = new Map<string, LiveCampaign[]>();
  /** `${business}\0${channel}` → the active campaigns allowed on that channel, built on first use. */
  private servable = new Map<string, LiveCampaign[]>();
  private freqKeep = new Map<string, number>();
  /** Delivery before this time was loaded from the store; the bus's copy of it only feeds windows. */
  statsCutoffMs = Number.NEGATIVE_INFINITY;

  // ---- identity

  private userIndex(id: string, create: boolean): number {
    let i = this.users.get(id);
    if (i === undefined && create) {
      i = this.nextUser++;
      this.users.set(id, i);
      if (i >= this.words * 32) this.grow();
    }
    return i ?? -1;
  }

  private grow() {
    this.words *= 2;
    this.segBits = this.segBits.map((b) => {
      const n = new Uint32Array(this.words);
      n.set(b);
      return n;
    });
  }

  segmentIndex(id: string): number {
    let i = this.segIndex.get(id);
    if (i === undefined) {
      i = this.segBits.length;
      this.segIndex.set(id, i);
      this.segBits.push(new Uint32Array(this.words));
    }
    return i;
  }

  // ---- membership

  setMember(segmentId: string, userId: string, member: boolean) {
    const s = this.segmentIndex(segmentId);
    const u = this.userIndex(userId, member);
    if (u < 0) return;
    const bits = this.segBits[s];
    if (member) bits[u >>> 5] |= 1 << (u & 31);
    else bits[u >>> 5] &= ~(1 << (u & 31));
  }

  isMember(segmentIdx: number, userIdx: number) {
    if (userIdx < 0) return false;
    return (this.segBits[segmentIdx][userIdx >>> 5] & (1 << (userIdx & 31))) !== 0;
  }

  // ---- campaigns

  setCampaigns(list: Campaign[]) {
    this.campaigns = list.filter((c) => !c.deleted).map((c) => this.compile(c));
    this.byBusiness = new Map();
    this.servable = new Map();
    this.freqKeep = new Map();
    for (const c of this.campaigns) {
      const l = this.byBusiness.get(c.businessId) ?? [];
      l.push(c);
      this.byBusiness.set(c.businessId, l);
      this.freqKeep.set(c.id, c.freqMax);
    }
  }

  campaignsOf(businessId: string): readonly LiveCampaign[] {
    return this.byBusiness.get(businessId) ?? [];
  }

  /**
   * The campaigns of a business that could serve on a channel at all: active and allowed there.
   * The rest are ineligible whatever the user or the clock, so a decision that need not explain
   * itself skips them (in the same order, so the same campaign wins).
   */
  servableCampaignsOf(businessId: string, channel: string): readonly LiveCampaign[] {
    const all = this.byBusiness.get(businessId);
    if (!all) return []; // not cached: only businesses with campaigns take memory here
    const key = k2(businessId, channel);
    let list = this.servable.get(key);
    if (!list) {
      list = all.filter((c) => c.active && (!c.channels || c.channels.has(channel)));
      this.servable.set(key, list);
    }
    return list;
  }

  get campaignCount() {
    return this.campaigns.length;
  }

  private compile(c: Campaign): LiveCampaign {
    const t = c.targeting;
    return {
      id: c.id,
      businessId: c.business_id,
      active: c.status === 'active',
      startMs: Date.parse(c.schedule.start),
      endMs: c.schedule.end === undefined ? null : Date.parse(c.schedule.end),
      channels: t.channels ? new Set(t.channels) : null,
      segAll: (t.segments_all ?? []).map((s) => this.segmentIndex(s)),
      segAny: (t.segments_any ?? []).map((s) => this.segmentIndex(s)),
      segNone: (t.segments_none ?? []).map((s) => this.segmentIndex(s)),
      bid:
        'cpm_micros' in c.bid
          ? { kind: 'cpm', micros: c.bid.cpm_micros }
          : { kind: 'cpc', micros: c.bid.cpc_micros },
      totalBudget: c.budget.total_micros,
      dailyBudget: c.budget.daily_micros ?? null,
      freqMax: c.frequency_cap.max,
      freqWindowMs: c.frequency_cap.per_seconds * 1000,
      pacing: c.pacing,
      source: c,
    };
  }

  /** Read-only: a campaign with no delivery yet shares one empty record. */
  statsOf(campaignId: string): Readonly<CampaignStats> {
    return this.stats.get(campaignId) ?? NO_STATS;
  }

  // ---- facts from the events topic

  noteConversation(businessId: string, userId: string) {
    const u = this.userIndex(userId, true);
    let s = this.conversations.get(businessId);
    if (!s) {
      s = new Set();
      this.conversations.set(businessId, s);
    }
    s.add(u);
  }

  noteOpt(businessId: string, userId: string, out: boolean, atMs: number) {
    const key = k2(businessId, userId);
    const prev = this.optState.get(key);
    if (prev && prev.atMs > atMs) return; // a later change already applied
    this.optState.set(key, { out, atMs });
  }

  noteBlocked(businessId: string, userId: string) {
    this.blocked.add(k2(businessId, userId));
  }

  /** A served decision, counted once whether it comes from this process or the bus. */
  noteServed(f: ServedFact, local: boolean) {
    if (local) this.pendingEcho.add(f.decisionId);
    else if (this.pendingEcho.delete(f.decisionId)) return;
    const day = dayOf(f.atMs);
    if (local || f.atMs >= this.statsCutoffMs) {
      const s = this.stats.get(f.campaignId) ?? emptyStats();
      this.stats.set(f.campaignId, s);
      s.served++;
      s.spentTotal += f.priceMicros;
      if (day > s.day) {
        s.day = day;
        s.spentDay = 0;
      }
      if (day === s.day) s.spentDay += f.priceMicros;
    }

    let perUser = this.freq.get(f.userId);
    if (!perUser) {
      perUser = new Map();
      this.freq.set(f.userId, perUser);
    }
    const times = perUser.get(f.campaignId) ?? [];
    times.push(f.atMs);
    if (times.length > 1 && times[times.length - 2] > f.atMs) times.sort((a, b) => a - b);
    const keep = this.freqKeep.get(f.campaignId) ?? 1;
    if (times.length > keep) times.splice(0, times.length - keep);
    perUser.set(f.campaignId, times);

    const ck = k3(f.userId, f.businessId, f.channel);
    const cd = this.channelDay.get(ck);
    if (!cd || day > cd.day) this.channelDay.set(ck, { day, n: 1 });
    else if (day === cd.day) cd.n++;

    const last = this.threadLast.get(f.threadId) ?? Number.NEGATIVE_INFINITY;
    if (f.atMs > last) this.threadLast.set(f.threadId, f.atMs);
  }

  noteClicked(decisionId: string, campaignId: string, atMs = Number.POSITIVE_INFINITY) {
    if (this.clicked.has(decisionId)) return;
    this.clicked.add(decisionId);
    if (atMs < this.statsCutoffMs) return; // counted in the stored delivery
    const s = this.stats.get(campaignId) ?? emptyStats();
    this.stats.set(campaignId, s);
    s.clicks++;
  }

  // ---- reads

  view(userId: string, businessId: string, channel: string, threadId: string, nowMs: number): UserView {
    const u = this.users.get(userId) ?? -1;
    const opt = this.optState.get(k2(businessId, userId));
    const cd = this.channelDay.get(k3(userId, businessId, channel));
    const served = this.freq.get(userId);
    return {
      inSegment: (s) => this.isMember(s, u),
      optedOut: opt?.out === true,
      blocked: this.blocked.has(k2(businessId, userId)),
      hasConversation: u >= 0 && (this.conversations.get(businessId)?.has(u) ?? false),
      channelToday: cd && cd.day === dayOf(nowMs) ? cd.n : 0,
      threadLastMs: this.threadLast.get(threadId) ?? Number.NEGATIVE_INFINITY,
      servesSince: (campaignId, sinceMs) => {
        const times = served?.get(campaignId);
        if (!times) return 0;
        let n = 0;
        for (let i = times.length - 1; i >= 0 && times[i] >= sinceMs; i--) n++;
        return n;
      },
    };
  }

  /**
   * Forgets a person (an erasure): everywhere, or in one business (there, membership only of
   * the given segments, the business's own). Thread quiet periods are keyed by thread and expire.
   */
  forget(userId: string, scope?: { businessId: string; segmentIds: readonly string[] }) {
    const u = this.users.get(userId);
    const inScope = (business: string) => !scope || business === scope.businessId;
    if (u !== undefined) {
      const segs = scope ? scope.segmentIds.map((s) => this.segIndex.get(s)) : this.segBits.keys();
      for (const s of segs) if (s !== undefined) this.segBits[s][u >>> 5] &= ~(1 << (u & 31));
      for (const [business, set] of this.conversations) if (inScope(business)) set.delete(u);
      if (!scope) this.users.delete(userId);
    }
    const tail = `\u0000${userId}`;
    for (const key of this.optState.keys())
      if (key.endsWith(tail) && inScope(key.slice(0, -tail.length))) this.optState.delete(key);
    for (const key of this.blocked)
      if (key.endsWith(tail) && inScope(key.slice(0, -tail.length))) this.blocked.delete(key);
    const head = `${userId}\u0000`;
    for (const key of this.channelDay.keys())
      if (key.startsWith(head) && inScope(key.slice(head.length).split('\u0000')[0]))
        this.channelDay.delete(key);
    const served = this.freq.get(userId);
    if (served && !scope) this.freq.delete(userId);
    else if (served && scope)
      for (const c of this.campaigns) if (c.businessId === scope.businessId) served.delete(c.id);
  }

  /** Drops counters that can no longer affect a decision; run now and then. */
  prune(nowMs: number, quietPeriodMs: number) {
    const today = dayOf(nowMs);
    for (const [k, v] of this.channelDay) if (v.day < today) this.channelDay.delete(k);
    for (const [k, t] of this.threadLast) if (nowMs - t >= quietPeriodMs) this.threadLast.delete(k);
    let longest = DAY_MS;
    for (const c of this.campaigns) longest = Math.max(longest, c.freqWindowMs);
    for (const [u, perUser] of this.freq) {
      for (const [c, times] of perUser) if (times[times.length - 1] < nowMs - longest) perUser.delete(c);
      if (perUser.size === 0) this.freq.delete(u);
    }
    if (this.clicked.size > 5_000_000) this.clicked.clear();
  }
}
