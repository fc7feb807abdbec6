import type { Bus, InMessage } from '../core/bus/types.ts';
import { waitForGroup } from '../core/bus/wait.ts';
import { eventOf } from '../core/events/decoded.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import {
  createMembershipWriter,
  loadSegmentState,
  type MembershipWriter,
  reconcileMembership,
  storedMembers,
} from '../core/segments/membership.ts';
import { compileRule } from '../core/segments/rule.ts';
import { createSegmentStore, type SegmentRecord } from '../core/segments/store.ts';
import {
  type Change,
  type SegmentDef,
  StreamingEvaluator,
  type StreamEvent,
} from '../core/segments/stream.ts';
import type { Store } from '../core/store/client.ts';
import type { Pipeline } from './pipeline.ts';
import type { Processor } from './types.ts';

// Keeps segment membership current as events stream in and as time passes. State per segment is
// rebuilt from stored events (one query per segment) at start and whenever a segment changes,
// then kept by the streaming evaluator; a sweep every second applies window exits. Changes are
// published on the membership topic before offsets commit, then stored in segment_membership.
//
// Several processors may share the consumer group. Each holds state for every user but announces
// changes only for the users whose events it consumes (those keyed to its assigned partitions).
// When a rebalance hands it partitions another member has consumed since, its state is reloaded
// from the store (once the sink has stored those events) before it handles their batches.

export type SegmentsProcessorOptions = {
  store: Store;
  bus: Bus;
  logger: Logger;
  metrics: Metrics;
  topic: string;
  membershipTopic: string;
  pipeline: Pipeline;
  groupId?: string;
  /** How often segment definitions are re-read. */
  pollMs?: number;
  /** How often time-driven changes (windows closing or opening) are applied. */
  sweepMs?: number;
  /**
   * The consumer group that stores events (the sink). At start, state is loaded from the store only
   * once that group has stored everything this processor already committed, so nothing consumed
   * before a restart is missing from the rebuilt state.
   */
  storedBy?: string;
  /** How long to wait for that group at start before loading anyway. */
  storedByTimeoutMs?: number;
  /**
   * Consumed events are kept to replay into a segment loaded from the store until the storing
   * group (storedBy) has committed past them, and at most this long.
   */
  recentMs?: number;
  now?: () => number;
};

export type SegmentsProcessor = Processor & {
  /** Re-reads segment definitions now and loads, reloads or drops segments that changed. */
  refresh(): Promise<void>;
  /** Applies time-driven changes due by now. */
  sweep(): Promise<void>;
  readonly evaluator: StreamingEvaluator;
  /** Partitions of the events topic this member announces changes for; null before the first assignment. */
  held(): number[] | null;
  /** Forgets erased people: their state and the consumed events kept for loads. */
  forget(erased: (userId: string, segment: SegmentDef | undefined) => boolean): Promise<void>;
};

export function createSegmentsProcessor(opts: SegmentsProcessorOptions): SegmentsProcessor {
  const log = opts.logger.child({ component: 'segments' });
  const now = opts.now ?? Date.now;
  const segments = createSegmentStore(opts.store);
  // Changes are published before the batch commits and stored right after, off the hot path: the
  // store is what a restart reconciles against, and it never runs ahead of the topic.
  const writer: MembershipWriter = createMembershipWriter({
    store: opts.store,
    bus: opts.bus,
    topic: opts.membershipTopic,
    onStoreError: (err) => log.warn({ err }, 'storing membership changes failed; retrying'),
    onRefused: (refused) =>
      opts.pipeline.deadLetters(
        'segments',
        refused.map(({ item, error }) => ({ error, input: item })),
      ),
  });
  // Only the first copy of an event counts (core/events/dedup.ts).
  const dedup = opts.pipeline.dedup('segments');
  const groupId = opts.groupId ?? 'parley-segments';
  const evaluator = new StreamingEvaluator();
  const loaded = new Map<string, number>(); // segment id → version held in memory
  // Segments loaded at the previous poll: their stored membership is checked once more, in case
  // the API was still writing the initial membership when the processor loaded them.
  let toVerify = new Set<string>();
  // Messages consumed lately, kept as they came (parsed only if a segment loads and needs them)
  // until the sink has stored them: kept longer, they would only weigh on the heap.
  let recent: { at: number; m: InMessage }[] = [];
  let recentHead = 0;
  const recentMs = opts.recentMs ?? 10_000;
  let storedUpTo = new Map<number, bigint>(); // partition → the storing group's committed offset
  let storedPolledAt = 0;
  let storedPolling = false;
  const pollStored = () => {
    if (!opts.storedBy || storedPolling || Date.now() - storedPolledAt < 250) return;
    storedPolling = true;
    opts.bus
      .lag(opts.storedBy, opts.topic)
      .then((l) => {
        storedUpTo = new Map(l.map((x) => [x.partition, x.committed]));
      })
      .catch(() => {}) // the time bound still holds; the next batch asks again
      .finally(() => {
        storedPolledAt = Date.now();
        storedPolling = false;
      });
  };
  const isStored = (m: InMessage) => m.offset < (storedUpTo.get(m.partition) ?? -1n);
  const timers: NodeJS.Timeout[] = [];
  let chain: Promise<unknown> = Promise.resolve();
  // Partitions of the events topic this member holds; null until the group first assigns them,
  // and until then nothing is announced.
  let owned: Set<number> | null = null;
  let partitionOf: (userId: string) => number = () => 0;
  // Per partition, the offset up to which events are reflected in this member's state.
  const seen = new Map<number, bigint>();
  let reassigning: Promise<void> | undefined;
  let latest: Set<number> | undefined;

  /** One thing at a time touches the evaluator and writes, so changes are written in order. */
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = chain.then(fn, fn);
    chain = run.catch(() => {});
    return run;
  }

  // Changes the evaluator has made stay queued in the writer until published (a failed publish
  // is retried by the next write), so none is lost when a batch fails and comes again.
  async function write(all: Change[]) {
    const held = owned;
    const changes = held ? all.filter((c) => held.has(partitionOf(c.userId))) : [];
    await writer.publish(changes);
    const entered = changes.filter((c) => c.member).length;
    opts.metrics.segmentChanges.labels('entered').inc(entered);
    opts.metrics.segmentChanges.labels('exited').inc(changes.length - entered);
  }

  async function load(s: SegmentRecord) {
    const def: SegmentDef = {
      id: s.id,
      businessId: s.business_id ?? undefined,
      rule: compileRule(s.rule),
      version: s.version,
    };
    const t = now();
    const rows = await loadSegmentState(opts.store, def.rule, { nowMs: t, businessId: def.businessId });
    await writer.flush();
    const changes = evaluator.load(def, rows, await storedMembers(opts.store, s.id), t);
    // Events consumed but perhaps not yet stored by the sink still count.
    for (let i = recentHead; i < recent.length; i++) {
      const e = decode(recent[i].m);
      if (e) changes.push(...evaluator.ingest(e, now(), s.id));
    }
    await write(changes);
    loaded.set(s.id, s.version);
    log.info(
      { segment: s.id, version: s.version, users: rows.length, changes: changes.length },
      'segment loaded',
    );
  }

  async function refresh() {
    const all = await segments.list({ includeDeleted: true });
    if (toVerify.size) await writer.flush();
    for (const id of toVerify) {
      const s = all.find((x) => x.id === id);
      if (s && !s.deleted && loaded.get(id) === s.version)
        await write(evaluator.resync(id, await storedMembers(opts.store, id), now()));
    }
    toVerify = new Set();
    const live = new Set<string>();
    for (const s of all) {
      if (s.deleted) continue;
      live.add(s.id);
      if (loaded.get(s.id) === s.version) continue;
      try {
        await load(s);
        toVerify.add(s.id);
      } catch (err) {
        log.error({ err, segment: s.id }, 'could not load a segment; retrying at the next poll');
      }
    }
    for (const id of [...loaded.keys()]) {
      if (live.has(id)) continue;
      evaluator.remove(id, now());
      loaded.delete(id);
      const tomb = all.find((s) => s.id === id);
      if (tomb) {
        await writer.flush();
        await reconcileMembership(opts.store, writer, tomb, now()); // exits anyone entered since the delete
      }
      log.info({ segment: id }, 'segment dropped');
    }
  }

  async function sweep() {
    await write(evaluator.advance(now()));
  }

  /** Whether another member has consumed events of these partitions that this state lacks. */
  async function staleFor(parts: Set<number>) {
    const lag = await opts.bus.lag(groupId, opts.topic);
    return lag.some((l) => parts.has(l.partition) && l.committed > (seen.get(l.partition) ?? 0n));
  }

  async function noteCommitted() {
    for (const l of await opts.bus.lag(groupId, opts.topic))
      if (l.committed > (seen.get(l.partition) ?? 0n)) seen.set(l.partition, l.committed);
  }

  /** Takes up a new assignment: fresh state if it is stale, then announces what the store lacks. */
  async function reassign(parts: Set<number>) {
    owned = parts;
    if (await staleFor(parts)) {
      log.info({ partitions: [...parts] }, 'assigned partitions consumed elsewhere; reloading state');
      await waitForStore();
      await noteCommitted();
      loaded.clear(); // every segment is loaded again, its changes against the store announced
      await refresh();
      return;
    }
    await writer.flush();
    for (const id of evaluator.segmentIds())
      await write(evaluator.resync(id, await storedMembers(opts.store, id), now()));
  }

  async function waitForStore() {
    if (opts.storedBy)
      await waitForGroup(opts.bus, opts.topic, {
        group: groupId,
        storedBy: opts.storedBy,
        timeoutMs: opts.storedByTimeoutMs ?? 30_000,
        log,
      });
    // Copies consumed from here on are checked against everything the store has registered.
    await opts.pipeline.index.refresh();
  }

  function every(ms: number, what: string, fn: () => Promise<void>) {
    const t = setInterval(() => {
      exclusive(fn).catch((err) => log.warn({ err }, `${what} failed; retrying`));
    }, ms);
    t.unref();
    timers.push(t);
  }

  function decode(m: InMessage): StreamEvent | undefined {
    try {
      // Everything on the events topic was validated by its producer; check only the shape used.
      const e = eventOf(m);
      const ms = Date.parse(e.occurred_at);
      if (typeof e.user_id !== 'string' || typeof e.business_id !== 'string' || !Number.isFinite(ms)) {
        throw new Error('not a canonical event');
      }
      return {
        event_id: e.event_id,
        type: e.type,
        business_id: e.business_id,
        user_id: e.user_id,
        channel: e.channel,
        props: e.props ?? {},
        ms,
      };
    } catch (err) {
      log.error(
        { err, partition: m.partition, offset: m.offset.toString() },
        'dropping an undecodable message',
      );
      return undefined;
    }
  }

  return {
    name: 'segments',
    groupId,
    topics: [opts.topic],
    maxBatchSize: 5000,
    maxWaitMs: 10,
    evaluator,
    held: () => (owned ? [...owned].sort((a, b) => a - b) : null),
    forget: (erased) =>
      exclusive(async () => {
        const n = evaluator.forget(erased);
        recent = recent.slice(recentHead).filter(({ m }) => !erased(m.key, undefined));
        recentHead = 0;
        if (n) log.info({ states: n }, 'erased people forgotten');
      }),
    refresh: () => exclusive(refresh),
    sweep: () => exclusive(sweep),
    onAssign(assigned) {
      const parts = new Set(assigned.get(opts.topic) ?? []);
      // Batches wait until the assignment is taken up; a failure (the store is down) is retried
      // until it succeeds or a newer assignment supersedes it.
      const attempt = (): Promise<void> =>
        exclusive(() => reassign(parts)).catch(async (err) => {
          log.warn({ err }, 'taking up a new assignment failed; retrying');
          await new Promise((r) => setTimeout(r, 1000));
          if (latest === parts) return attempt();
        });
      latest = parts;
      reassigning = attempt();
    },
    async init() {
      partitionOf = await opts.bus.partitioner(opts.topic);
      await waitForStore();
      await noteCommitted();
      await exclusive(refresh);
      every(opts.pollMs ?? 2000, 'segment refresh', refresh);
      every(opts.sweepMs ?? 1000, 'membership sweep', sweep);
    },
    // Not serialised with other batches: the evaluator's work for a batch is synchronous, and
    // publishing is one ordered queue, so batches of several partitions share each publish.
    async handle(batch, ctx) {
      // Waiting for a new assignment to be taken up (it may wait for the sink) keeps the
      // membership in the group alive.
      while (reassigning) {
        const current = reassigning;
        const done = await Promise.race([
          current.then(() => true),
          new Promise<false>((r) => setTimeout(r, 1000, false)),
        ]);
        if (done) {
          if (reassigning === current) reassigning = undefined;
          break;
        }
        await ctx.heartbeat();
      }
      const firsts = await dedup.firstCopies(batch.messages);
      const t = now();
      const changes: Change[] = evaluator.advance(t);
      // With no segment loaded no event can change anything: none is parsed.
      const live = evaluator.size > 0;
      for (const m of firsts) {
        recent.push({ at: t, m });
        if (!live) continue;
        const e = decode(m);
        if (e) for (const c of evaluator.ingest(e, t)) changes.push(c);
      }
      pollStored();
      while (
        recentHead < recent.length &&
        (recent[recentHead].at < t - recentMs || isStored(recent[recentHead].m))
      )
        recentHead++;
      if (recentHead > 10_000 && recentHead * 2 > recent.length) {
        recent = recent.slice(recentHead);
        recentHead = 0;
      }
      await write(changes);
      const last = batch.messages.at(-1);
      if (last && last.offset + 1n > (seen.get(batch.partition) ?? 0n))
        seen.set(batch.partition, last.offset + 1n);
      opts.metrics.processed.labels('segments').inc(batch.messages.length);
    },
    async close() {
      for (const t of timers) clearInterval(t);
      await chain;
      const stored = await Promise.race([
        writer.flush().then(() => true),
        new Promise((r) => setTimeout(r, 10_000, false)),
      ]);
      if (!stored) log.warn('membership changes not yet stored at shutdown; the next start reconciles them');
      writer.close();
    },
  };
}
