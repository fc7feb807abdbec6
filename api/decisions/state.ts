import type { Campaign } from '../../core/campaigns/schema.ts';
import { CHANNELS, type Channel } from '../../core/events/schema.ts';
import type { OfferFacts } from '../../core/offers/token.ts';
import { type HeldOffer, OfferBook, threadHash } from './offers.ts';
import { type CampaignStats, DAY_MS, dayOf, emptyStats, type LiveCampaign, type UserView } from './types.ts';

// The decision engine's memory: campaigns, segment membership, delivery counters and the offers
// this process holds. It is fed from the bus (membership topic, events topic) and by this
// process's own offers, and read on every decision without any I/O.
//
// Memory: user ids are interned once to small integers; segment membership is a word per user for
// each 32 segments (1M users → 4 MB per 32 segments), so 1M users × 20 segments cost the intern
// table and 4 MB of bits. The users each business has a conversation with are a small Set, or a bitset
// once that is smaller (UserSet). Held offers and recent impressions live in queues of typed-array chunks
// (offers.ts, 32 bytes each), linked per user; impressions are kept for the longest window they
// count in (at least a day), offers until confirmed or released.

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

/** What an offer's signed token carries about it (core/offers/token.ts). */
export function offerFacts(f: ServedFact): OfferFacts {
  return {
    decision_id: f.decisionId,
    campaign_id: f.campaignId,
    business_id: f.businessId,
    user_id: f.userId,
    channel: f.channel as Channel,
    thread_id: f.threadId,
    price_micros: f.priceMicros,
    at_ms: f.atMs,
  };
}

const NO_STATS: Readonly<CampaignStats> = Object.freeze(emptyStats());
const CHANNEL_CODE = new Map<string, number>(CHANNELS.map((c, i) => [c, i]));
/** Keywords of the thread's latest incoming messages that contextual targeting reads. */
const THREAD_MESSAGES = 3;
const THREAD_WORDS_MS = DAY_MS;
/** Held offers are released this long after their token expires, so a last-moment confirmation arrives first. */
export const RELEASE_GRACE_MS = 60_000;
const k2 = (a: string, b: string) => `${a}\u0000${b}`;

export class DecisionState {
  readonly users = new Map<string, number>();
  /** How long an offer is held (and its token accepted). */
  readonly holdMs: number;
  readonly offers: OfferBook;
  private readonly campIndex = new Map<string, number>();
  private readonly campStats: CampaignStats[] = [];
  private readonly campBusiness: string[] = [];
  /**
   * Impressions from the bus, for the windows they count in (frequency caps, channel daily limits,
   * the quiet period): kept in the order read, for the longest window (at least a day), linked per
   * user like held offers. A repeated confirmation is recognised in its user's chain.
   */
  readonly impressions: OfferBook;
  private newestImpressionMs = Number.NEGATIVE_INFINITY;
  /** The longest window an impression counts in (at least a day); set from campaigns. */
  private impressionRetentionMs = DAY_MS;
  /** thread → keywords of its latest incoming messages (newest first) and their times. */
  private readonly threadWords = new Map<string, { at: number[]; words: string[][] }>();
  /** The user's held offers and recent impressions, gathered once per decision. */
  private readonly recent: Recent[] = [];
  private readonly gather = (o: HeldOffer) => {
    this.recent.push({ campaign: o.campaign, channel: o.channel, thread: o.thread, atMs: o.atMs });
  };
  /** The next user index: not users.size, since an erased user's entry is removed. */
  private nextUser = 0;
  private readonly segIndex = new Map<string, number>();
  private segments = 0;
  /**
   * Membership, 32 segments to a word: groups[g][u] holds user u's bits of segments 32g to
   * 32g+31, so the segments a decision reads are a word or two of memory, not a bitset each.
   */
  private groups: Uint32Array[] = [];
  /** Users each group has room for. */
  private capacity = 32_768;
  private readonly conversations = new Map<string, UserSet>();
  /** `${business}\0${user}` → latest optout/optin (by occurred time). */
  private readonly optState = new Map<string, { out: boolean; atMs: number }>();
  private readonly blocked = new Set<string>();
  readonly stats = new Map<string, CampaignStats>();
  private readonly clicked = new Set<string>();
  private campaigns: LiveCampaign[] = [];
  private byBusiness = new Map<string, LiveCampaign[]>();
  /** business → the segments its campaigns target (at most 32; see LiveCampaign.segMask). */
  private targeted = new Map<string, number[]>();
  private byId = new Map<string, LiveCampaign>();
  /** business → channel → the active campaigns allowed on that channel, built on first use. */
  private servable = new Map<string, Map<string, LiveCampaign[]>>();
  /** Delivery before this time was loaded from the store; the bus's copy of it only feeds windows. */
  statsCutoffMs = Number.NEGATIVE_INFINITY;

  constructor(opts: { holdMs?: number } = {}) {
    this.holdMs = opts.holdMs ?? 600_000;
    this.offers = new OfferBook((c, price, atMs) => {
      const s = this.campStats[c];
      s.heldTotal -= price;
      if (dayOf(atMs) === s.heldDayOf) s.heldDay -= price;
    });
    this.impressions = new OfferBook(() => {}, 16_384);
  }

  // ---- identity

  private userIndex(id: string, create: boolean): number {
    let i = this.users.get(id);
    if (i === undefined && create) {
      i = this.nextUser++;
      this.users.set(id, i);
      if (i >= this.capacity) this.grow();
    }
    return i ?? -1;
  }

  private grow() {
    this.capacity *= 2;
    this.groups = this.groups.map((g) => {
      const n = new Uint32Array(this.capacity);
      n.set(g);
      return n;
    });
  }

  segmentIndex(id: string): number {
    let i = this.segIndex.get(id);
    if (i === undefined) {
      i = this.segments++;
      this.segIndex.set(id, i);
      if (i >>> 5 >= this.groups.length) this.groups.push(new Uint32Array(this.capacity));
    }
    return i;
  }

  // ---- membership

  setMember(segmentId: string, userId: string, member: boolean) {
    const s = this.segmentIndex(segmentId);
    const u = this.userIndex(userId, member);
    if (u < 0) return;
    const group = this.groups[s >>> 5];
    if (member) group[u] |= 1 << (s & 31);
    else group[u] &= ~(1 << (s & 31));
  }

  isMember(segmentIdx: number, userIdx: number) {
    if (userIdx < 0) return false;
    return (this.groups[segmentIdx >>> 5][userIdx] & (1 << (segmentIdx & 31))) !== 0;
  }

  // ---- campaigns

  setCampaigns(list: Campaign[]) {
    this.campaigns = list.filter((c) => !c.deleted).map((c) => this.compile(c));
    this.byBusiness = new Map();
    this.byId = new Map(this.campaigns.map((c) => [c.id, c]));
    this.servable = new Map();
    this.impressionRetentionMs = DAY_MS;
    for (const c of this.campaigns) {
      this.impressionRetentionMs = Math.max(this.impressionRetentionMs, c.freqWindowMs);
      c.stats = this.campStats[this.campaignIndex(c.id, c.businessId)];
      const l = this.byBusiness.get(c.businessId) ?? [];
      l.push(c);
      this.byBusiness.set(c.businessId, l);
    }
    this.targeted = new Map();
    for (const [business, list] of this.byBusiness) {
      const segs = [...new Set(list.flatMap((c) => [...c.segAll, ...c.segAny, ...c.segNone]))];
      if (segs.length > 32) continue;
      this.targeted.set(business, segs);
      const bits = (l: number[]) => l.reduce((m, s) => m | (1 << segs.indexOf(s)), 0);
      for (const c of list) c.segMask = { all: bits(c.segAll), any: bits(c.segAny), none: bits(c.segNone) };
    }
  }

  campaign(id: string): LiveCampaign | undefined {
    return this.byId.get(id);
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
    let byChannel = this.servable.get(businessId);
    if (!byChannel) {
      byChannel = new Map();
      this.servable.set(businessId, byChannel);
    }
    let list = byChannel.get(channel);
    if (!list) {
      list = all.filter((c) => c.active && (!c.channels || c.channels.has(channel)));
      byChannel.set(channel, list);
    }
    return list;
  }

  get campaignCount() {
    return this.campaigns.length;
  }

  private campaignIndex(id: string, businessId?: string) {
    let i = this.campIndex.get(id);
    if (i === undefined) {
      i = this.campStats.length;
      this.campIndex.set(id, i);
      this.campStats.push(this.stats.get(id) ?? emptyStats());
      this.stats.set(id, this.campStats[i]);
    }
    if (businessId !== undefined) this.campBusiness[i] = businessId;
    return i;
  }

  /** The writable delivery record of a campaign. */
  statsFor(campaignId: string, businessId?: string): CampaignStats {
    return this.campStats[this.campaignIndex(campaignId, businessId)];
  }

  /** A campaign ready to serve; its `stats` are set by setCampaigns. */
  private compile(c: Campaign): LiveCampaign {
    const t = c.targeting;
    const words = (l?: string[]) => (l?.length ? new Set(l.map((w) => w.toLowerCase())) : null);
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
      segMask: null,
      kwAny: words(t.keywords_any),
      kwNone: words(t.keywords_none),
      bid:
        'cpm_micros' in c.bid
          ? { kind: 'cpm', micros: c.bid.cpm_micros }
          : { kind: 'cpc', micros: c.bid.cpc_micros },
      totalBudget: c.budget.total_micros,
      dailyBudget: c.budget.daily_micros ?? null,
      freqMax: c.frequency_cap.max,
      freqWindowMs: c.frequency_cap.per_seconds * 1000,
      pacing: c.pacing,
      holdout: c.holdout ?? 0,
      stats: NO_STATS,
      source: c,
    };
  }

  /** Read-only: a campaign with no delivery yet shares one empty record. */
  statsOf(campaignId: string): Readonly<CampaignStats> {
    return this.stats.get(campaignId) ?? NO_STATS;
  }

  // ---- facts from the events topic

  /** Keeps the keywords of a thread's latest incoming messages (never their text). */
  noteKeywords(threadId: string, keywords: unknown, atMs: number) {
    if (!Array.isArray(keywords) || keywords.length === 0) return;
    const words = keywords.filter((k): k is string => typeof k === 'string').map((k) => k.toLowerCase());
    let t = this.threadWords.get(threadId);
    if (!t) {
      t = { at: [], words: [] };
      this.threadWords.set(threadId, t);
    }
    let i = 0;
    while (i < t.at.length && t.at[i] > atMs) i++;
    if (i >= THREAD_MESSAGES) return; // older than the messages kept
    t.at.splice(i, 0, atMs);
    t.words.splice(i, 0, words);
    t.at.length = Math.min(t.at.length, THREAD_MESSAGES);
    t.words.length = t.at.length;
  }

  noteConversation(businessId: string, userId: string) {
    const u = this.userIndex(userId, true);
    let s = this.conversations.get(businessId);
    if (!s) {
      s = new UserSet();
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

  /**
   * Holds a new offer: from now on it counts against caps, limits and budgets in this process.
   * Returns its decision id.
   */
  hold(f: Omit<ServedFact, 'decisionId'>): string {
    const campaign = this.campaignIndex(f.campaignId, f.businessId);
    const stats = this.campStats[campaign];
    stats.heldTotal += f.priceMicros;
    const day = dayOf(f.atMs);
    if (day > stats.heldDayOf) {
      stats.heldDayOf = day;
      stats.heldDay = 0;
    }
    if (day === stats.heldDayOf) stats.heldDay += f.priceMicros;
    const seq = this.offers.add(
      {
        key: 0,
        campaign,
        channel: CHANNEL_CODE.get(f.channel) ?? 255,
        thread: threadHash(f.threadId),
        atMs: f.atMs,
        priceMicros: f.priceMicros,
      },
      this.userIndex(f.userId, true),
    );
    return this.offers.idOf(seq);
  }

  private ghosts = 0;
  /** A decision id for a ghost offer (never held): `w_` and this process's instance. */
  ghostId() {
    return `w_${this.offers.instance}${(this.ghosts++).toString(36)}`;
  }

  /** Releases the offers whose hold (and grace) has ended by nowMs. */
  releaseExpired(nowMs: number) {
    this.offers.expire(nowMs - this.holdMs - RELEASE_GRACE_MS);
  }

  /**
   * An impression (sponsored.served from the bus), counted once per decision however often it is
   * confirmed. If this process holds the offer, the hold ends: the impression counts instead.
   */
  noteServed(f: ServedFact) {
    const mine = this.offers.seqOf(f.decisionId);
    if (mine >= 0 && this.offers.confirm(mine) === 'seen') return;
    const u = this.userIndex(f.userId, true);
    const campaign = this.campaignIndex(f.campaignId, f.businessId);
    const key = threadHash(f.decisionId);
    let repeated = false;
    this.impressions.forEachHeld(u, (o) => {
      if (o.key === key && o.campaign === campaign) repeated = true;
    });
    if (repeated) return;
    if (f.atMs >= this.statsCutoffMs) {
      const s = this.campStats[campaign];
      const day = dayOf(f.atMs);
      s.served++;
      s.spentTotal += f.priceMicros;
      if (day > s.day) {
        s.day = day;
        s.spentDay = 0;
      }
      if (day === s.day) s.spentDay += f.priceMicros;
    }
    // Reading the bus from its beginning at start, impressions older than every window are
    // dropped as they come (relative to the newest read), so a long retention costs no memory.
    if (f.atMs > this.newestImpressionMs) this.newestImpressionMs = f.atMs;
    const horizon = this.newestImpressionMs - this.impressionRetentionMs;
    if (f.atMs < horizon) return;
    if (this.impressions.made % 4096 === 0) this.impressions.expire(horizon);
    this.impressions.add(
      {
        key,
        campaign,
        channel: CHANNEL_CODE.get(f.channel) ?? 255,
        thread: threadHash(f.threadId),
        atMs: f.atMs,
        priceMicros: 0,
      },
      u,
    );
  }

  noteClicked(decisionId: string, campaignId: string, atMs = Number.POSITIVE_INFINITY) {
    if (this.clicked.has(decisionId)) return;
    this.clicked.add(decisionId);
    if (atMs < this.statsCutoffMs) return; // counted in the stored delivery
    this.statsFor(campaignId).clicks++;
  }

  // ---- reads

  view(
    userId: string,
    businessId: string,
    channel: string,
    threadId: string,
    nowMs: number,
    context?: readonly string[],
  ): UserView {
    const u = this.users.get(userId) ?? -1;
    const opt = this.optState.size > 0 ? this.optState.get(k2(businessId, userId)) : undefined;
    const today = dayOf(nowMs);
    let channelToday = 0;
    let threadLastMs = Number.NEGATIVE_INFINITY;
    // The user's recent impressions, and the offers this user holds here, which count like them.
    const held = this.recent;
    held.length = 0;
    this.impressions.forEachHeld(u, this.gather);
    if (this.offers.held > 0) this.offers.forEachHeld(u, this.gather);
    if (held.length > 0) {
      const ch = CHANNEL_CODE.get(channel) ?? 255;
      const th = threadHash(threadId);
      for (const o of held) {
        if (o.channel === ch && dayOf(o.atMs) === today && this.campBusiness[o.campaign] === businessId)
          channelToday++;
        if (o.thread === th && o.atMs > threadLastMs) threadLastMs = o.atMs;
      }
    }
    return new View(
      this,
      u,
      this.targetedMembership(businessId, u),
      opt?.out === true,
      this.blocked.size > 0 && this.blocked.has(k2(businessId, userId)),
      u >= 0 && (this.conversations.get(businessId)?.has(u) ?? false),
      channelToday,
      threadLastMs,
      held,
      nowMs,
      context,
      this.threadWords.size > 0 ? this.threadWords.get(threadId) : undefined,
    );
  }

  /** The user's membership of the segments a business's campaigns target, as their segMask bits. */
  private targetedMembership(businessId: string, u: number): number {
    const segs = this.targeted.get(businessId);
    if (!segs || u < 0) return 0;
    let m = 0;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      if ((this.groups[s >>> 5][u] & (1 << (s & 31))) !== 0) m |= 1 << i;
    }
    return m;
  }

  /** The interned index of a campaign with delivery or offers (see campaignIndex), if any. */
  campaignIndexOf(campaignId: string) {
    return this.campIndex.get(campaignId);
  }

  /**
   * Forgets a person (an erasure): everywhere, or in one business (there, membership only of
   * the given segments, the business's own). Thread quiet periods are keyed by thread and expire.
   */
  forget(userId: string, scope?: { businessId: string; segmentIds: readonly string[] }) {
    const u = this.users.get(userId);
    const inScope = (business: string) => !scope || business === scope.businessId;
    if (u !== undefined) {
      if (scope) {
        for (const id of scope.segmentIds) {
          const s = this.segIndex.get(id);
          if (s !== undefined) this.groups[s >>> 5][u] &= ~(1 << (s & 31));
        }
      } else for (const g of this.groups) g[u] = 0;
      for (const [business, set] of this.conversations) if (inScope(business)) set.delete(u);
      if (!scope) this.users.delete(userId);
    }
    const tail = `\u0000${userId}`;
    for (const key of this.optState.keys())
      if (key.endsWith(tail) && inScope(key.slice(0, -tail.length))) this.optState.delete(key);
    for (const key of this.blocked)
      if (key.endsWith(tail) && inScope(key.slice(0, -tail.length))) this.blocked.delete(key);
    // Held offers and impressions are chained per user index: with the index dropped above, they
    // belong to no one and expire with their windows.
  }

  /** Drops counters that can no longer affect a decision; run now and then. */
  prune(nowMs: number, quietPeriodMs: number) {
    // Impressions are kept for the longest window any of them counts in.
    let longest = Math.max(DAY_MS, quietPeriodMs);
    for (const c of this.campaigns) longest = Math.max(longest, c.freqWindowMs);
    this.impressionRetentionMs = longest;
    this.impressions.expire(nowMs - longest);
    if (this.clicked.size > 5_000_000) this.clicked.clear();
    for (const [t, w] of this.threadWords) if (nowMs - w.at[0] >= THREAD_WORDS_MS) this.threadWords.delete(t);
    this.releaseExpired(nowMs);
  }
}

type Recent = { campaign: number; channel: number; thread: number; atMs: number };

/** A UserView (types.ts) as one object with its methods on the prototype: nothing made per rule checked. */
class View implements UserView {
  constructor(
    private readonly state: DecisionState,
    private readonly u: number,
    readonly segments: number,
    readonly optedOut: boolean,
    readonly blocked: boolean,
    readonly hasConversation: boolean,
    readonly channelToday: number,
    readonly threadLastMs: number,
    private readonly held: readonly Recent[],
    private readonly nowMs: number,
    private readonly context: readonly string[] | undefined,
    private readonly thread: { at: number[]; words: string[][] } | undefined,
  ) {}

  inSegment(s: number) {
    return this.state.isMember(s, this.u);
  }

  servesSince(campaignId: string, sinceMs: number) {
    let n = 0;
    if (this.held.length > 0) {
      const c = this.state.campaignIndexOf(campaignId);
      for (const o of this.held) if (o.campaign === c && o.atMs >= sinceMs) n++;
    }
    return n;
  }

  mentions(words: ReadonlySet<string>) {
    if (this.context) for (const k of this.context) if (words.has(k.toLowerCase())) return true;
    const t = this.thread;
    if (t)
      for (let i = 0; i < t.at.length; i++)
        if (this.nowMs - t.at[i] < THREAD_WORDS_MS) for (const k of t.words[i]) if (words.has(k)) return true;
    return false;
  }
}

/**
 * A set of interned user indexes: a Set (about 16 bytes an entry) while small, a bitset over the
 * indexes (one bit each, up to the largest) once that takes less memory.
 */
export class UserSet {
  private small: Set<number> | null = new Set();
  private bits: Uint32Array | null = null;
  private largest = 0;

  add(u: number) {
    if (this.bits === null) {
      const small = this.small as Set<number>;
      small.add(u);
      if (u > this.largest) this.largest = u;
      if (small.size >= 1024 && small.size * 128 > this.largest) this.toBits(small);
      return;
    }
    if (u >>> 5 >= this.bits.length) {
      const grown = new Uint32Array(Math.max((u >>> 5) + 1, this.bits.length * 2));
      grown.set(this.bits);
      this.bits = grown;
    }
    this.bits[u >>> 5] |= 1 << (u & 31);
  }

  has(u: number) {
    if (this.bits === null) return (this.small as Set<number>).has(u);
    return u >>> 5 < this.bits.length && (this.bits[u >>> 5] & (1 << (u & 31))) !== 0;
  }

  delete(u: number) {
    if (this.bits === null) (this.small as Set<number>).delete(u);
    else if (u >>> 5 < this.bits.length) this.bits[u >>> 5] &= ~(1 << (u & 31));
  }

  private toBits(small: Set<number>) {
    this.bits = new Uint32Array((this.largest >>> 5) + 1);
    this.small = null;
    for (const u of small) this.add(u);
  }
}
