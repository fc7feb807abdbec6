import { randomBytes } from 'node:crypto';
import type { Reader } from '../../core/bus/types.ts';
import type { EventBatch, EventFeed } from '../../core/events/feed.ts';
import { createCampaignStore } from '../../core/campaigns/store.ts';
import type { Config } from '../../core/config.ts';
import type { Logger } from '../../core/log.ts';
import type { Store } from '../../core/store/client.ts';
import { BOOTSTRAP_CUTOFF_MS, bootstrapFromStore } from './bootstrap.ts';
import { FEED_TYPES, applyEvent, type DecideResult, decide } from './engine.ts';
import { type Rng, seededRng } from './rng.ts';
import { DecisionState } from './state.ts';
import type { DecisionRequest } from './types.ts';
import { isFirstSeen, RecentIds } from '../../core/events/dedup.ts';
import type { Erasures } from '../../core/erasure/registry.ts';
import { createSegmentStore } from '../../core/segments/store.ts';

// The decision engine of one api process: its state is rebuilt at start from the store (delivery,
// conversations and opt-outs before an hour ago) and the bus (the compacted membership topic and
// the retained events topic, each read from the beginning by an ungrouped read, which leaves no
// consumer group behind), and kept current from both; campaigns are reloaded from
// the store every few seconds and at once when this process changes one. It is ready once it has
// read everything that was on both topics when it started.

export type DecisionEngine = {
  state: DecisionState;
  isReady(): boolean;
  readonly ready: Promise<void>;
  reload(): Promise<void>;
  decide(req: DecisionRequest, nowMs?: number): DecideResult;
  status(): { ready: boolean; campaigns: number; users: number; behind: number };
  stop(): Promise<void>;
};

type Tracker = { target: Map<number, bigint>; seen: Map<number, bigint> };

export async function createDecisionEngine(deps: {
  store: Store;
  feed: EventFeed;
  logger: Logger;
  topics: { events: string; membership: string };
  decisions: Config['decisions'];
  /** Keys holdout assignment (PARLEY_HOLDOUT_KEY). */
  holdoutKey?: string;
  rng?: Rng;
  /** Erased people: their messages are skipped and their memory forgotten. */
  erasures?: Erasures;
}): Promise<DecisionEngine> {
  const log = deps.logger.child({ component: 'decisions' });
  const state = new DecisionState({ holdMs: deps.decisions.holdMs });
  const campaigns = createCampaignStore(deps.store);
  const rng = deps.rng ?? seededRng(randomBytes(4).readUInt32LE(0));
  const trackers = new Map<string, Tracker>();
  let ready = false;
  let markReady!: () => void;
  const readyP = new Promise<void>((r) => {
    markReady = r;
  });

  const behind = () => {
    let n = 0n;
    for (const t of trackers.values())
      for (const [p, end] of t.target) {
        const seen = t.seen.get(p) ?? 0n;
        if (seen < end) n += end - seen;
      }
    return Number(n);
  };
  const checkReady = () => {
    if (ready || trackers.size < 2 || behind() > 0) return;
    ready = true;
    log.info({ users: state.users.size, campaigns: state.campaignCount }, 'decision engine caught up');
    markReady();
  };
  const progress = (b: EventBatch) => {
    const t = trackers.get(b.topic);
    const last = b.messages.at(-1);
    if (!t || !last) return;
    const next = last.offset + 1n;
    if (next > (t.seen.get(b.partition) ?? 0n)) t.seen.set(b.partition, next);
    if (!ready) checkReady();
  };

  async function reload() {
    state.setCampaigns(await campaigns.list());
  }
  await reload();
  await bootstrapFromStore(deps.store, state, Date.now() - BOOTSTRAP_CUTOFF_MS);

  // Erased people's messages are skipped, whenever the bus replays them.
  const erased = deps.erasures?.set;
  const onMembership = async (b: EventBatch) => {
    for (const m of b.messages) {
      if (erased?.coversMessage(m)) continue;
      let msg: {
        type?: string;
        segment_id?: string;
        user_id?: string;
        business_id?: string | null;
        at?: unknown;
      };
      try {
        msg = JSON.parse(m.value.toString('utf8'));
      } catch {
        continue; // not a membership message; nothing to learn from it
      }
      if (typeof msg.segment_id !== 'string' || typeof msg.user_id !== 'string') continue;
      if (erased?.coversMembership(m, { ...msg, user_id: msg.user_id })) continue;
      state.setMember(msg.segment_id, msg.user_id, msg.type === 'segment.entered');
    }
    progress(b);
  };
  // This group reads the topic from its beginning in order: the first copy of an event it meets is
  // the first accepted one, and later copies change nothing (docs/ingest.md, "Duplicates").
  const firstSeen = new RecentIds(500_000);
  const onEvents = async (b: EventBatch) => {
    for (const m of b.messages) {
      if (!isFirstSeen(firstSeen, m)) continue;
      // Events on the topic passed ingest's validation; one that still cannot be read is skipped
      // rather than stopping the engine's view of everything after it.
      // Most events (deliveries, reads, the business's own messages) change nothing here.
      const type = m.type;
      if ((type !== undefined && !FEED_TYPES.has(type)) || erased?.coversMessage(m)) continue;
      try {
        const e = m.event();
        if (typeof e.type === 'string' && typeof e.user_id === 'string') applyEvent(state, e);
      } catch (err) {
        log.warn({ err, partition: b.partition, offset: String(m.offset) }, 'unreadable event skipped');
      }
    }
    progress(b);
  };

  const subs: Reader[] = [];
  // Each topic is read from its beginning by this process alone.
  for (const [topic, handler] of [
    [deps.topics.membership, onMembership],
    [deps.topics.events, onEvents],
  ] as const) {
    const tracker: Tracker = { target: new Map(), seen: new Map() };
    for (const p of await deps.feed.bus.offsets(topic)) {
      tracker.target.set(p.partition, p.end);
      tracker.seen.set(p.partition, p.start);
    }
    trackers.set(topic, tracker);
    // A short wait keeps processes closest in step; nothing is committed, so batches may be small.
    subs.push(await deps.feed.read({ topic, from: 'earliest', handler, maxBatchSize: 5000, maxWaitMs: 5 }));
  }
  checkReady();
  deps.erasures?.onErased(async (match) => {
    const segments = await createSegmentStore(deps.store).list();
    for (const userId of [...state.users.keys()]) {
      for (const e of match(userId)) {
        if (e.businessId === null) state.forget(userId);
        else {
          const own = segments.filter((s) => s.business_id === e.businessId).map((s) => s.id);
          state.forget(userId, { businessId: e.businessId, segmentIds: own });
        }
      }
    }
  });

  const refresh = setInterval(() => {
    reload().catch((err) => log.warn({ err }, 'campaign reload failed; serving the last loaded'));
  }, deps.decisions.campaignRefreshMs);
  const prune = setInterval(() => state.prune(Date.now(), deps.decisions.quietPeriodMs), 60_000);
  refresh.unref();
  prune.unref();

  return {
    state,
    isReady: () => ready,
    ready: readyP,
    reload,
    decide(req, nowMs = Date.now()) {
      const channel = deps.decisions.channelPolicy[req.channel] ?? {
        requireConversation: true,
        dailyLimit: null,
      };
      return decide(state, req, {
        nowMs,
        rng,
        policy: { quietPeriodMs: deps.decisions.quietPeriodMs, channel },
        holdoutKey: deps.holdoutKey,
      });
    },
    status: () => ({ ready, campaigns: state.campaignCount, users: state.users.size, behind: behind() }),
    async stop() {
      clearInterval(refresh);
      clearInterval(prune);
      await Promise.allSettled(subs.map((s) => s.stop()));
    },
  };
}
