import type { Bus } from '../core/bus/types.ts';
import { committedOffsets, type Offsets, waitForStored } from '../core/bus/wait.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import {
  createMembershipWriter,
  loadSegmentState,
  type MembershipWriter,
  reconcileMembership,
  storedMembers,
} from '../core/segments/membership.ts';
import { createSegmentStore, type SegmentRecord } from '../core/segments/store.ts';
import type { Change, SegmentDef, StreamingEvaluator } from '../core/segments/stream.ts';
import type { Store } from '../core/store/client.ts';
import type { Pipeline } from './pipeline.ts';
import { polled, serialised, takeOvers } from './segments/concurrency.ts';
import { SegmentsEvaluator, segmentDef } from './segments/evaluate.ts';
import type { Processor } from './types.ts';

// Keeps segment membership current as events stream in and as time passes. The decisions are
// the evaluator's (segments/evaluate.ts); this coordinator feeds it: segment state from stored
// events (one query per segment) at start and whenever a segment changes, the consumed batches,
// a sweep every second for window exits, and a reload when partitions are taken over. Changes
// are published on the membership topic before offsets commit, then stored in segment_membership.
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
   * How far the events topic is stored (the sink's `storedOffsets`). State is loaded from the
   * store only once it holds everything this processor's group has committed, so nothing consumed
   * before a restart or a take-over is missing from it. Without it the store is not waited for.
   */
  storedOffsets?: () => Promise<Offsets>;
  /** How long to wait for the store at start before loading anyway. */
  storedTimeoutMs?: number;
  /**
   * Consumed events are kept to replay into a segment loaded from the store until the store
   * holds them (storedOffsets), and at most this long.
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
  const state = new SegmentsEvaluator({
    recentMs: opts.recentMs ?? 10_000,
    onUndecodable: (m, err) =>
      log.error(
        { err, partition: m.partition, offset: m.offset.toString() },
        'dropping an undecodable message',
      ),
  });
  const stored = polled(opts.storedOffsets, new Map(), 250);
  const committed = () => committedOffsets(opts.bus, groupId, opts.topic);
  const serial = serialised();
  const takeOver = takeOvers();
  const timers: NodeJS.Timeout[] = [];

  // Changes the evaluator has made stay queued in the writer until published (a failed publish
  // is retried by the next write), so none is lost when a batch fails and comes again.
  async function write(all: Change[]) {
    const changes = state.announced(all);
    await writer.publish(changes);
    const entered = changes.filter((c) => c.member).length;
    opts.metrics.segmentChanges.labels('entered').inc(entered);
    opts.metrics.segmentChanges.labels('exited').inc(changes.length - entered);
  }

  /** Announces the differences between a segment's stored membership and the state. */
  async function resync(ids: Iterable<string>) {
    await writer.flush();
    for (const id of ids) await write(state.resync(id, await storedMembers(opts.store, id), now()));
  }

  async function load(s: SegmentRecord) {
    const t = now();
    const def = segmentDef(s);
    const rows = await loadSegmentState(opts.store, def.rule, { nowMs: t, businessId: def.businessId });
    await writer.flush();
    const changes = state.load(s, rows, await storedMembers(opts.store, s.id), t);
    await write(changes);
    state.markLoaded(s);
    log.info(
      { segment: s.id, version: s.version, users: rows.length, changes: changes.length },
      'segment loaded',
    );
  }

  const sweep = () => write(state.advance(now()));

  async function refresh() {
    const plan = state.plan(await segments.list({ includeDeleted: true }));
    if (plan.verify.length) await resync(plan.verify);
    for (const s of plan.load) {
      try {
        await load(s);
      } catch (err) {
        log.error({ err, segment: s.id }, 'could not load a segment; retrying at the next poll');
      }
    }
    for (const { id, tomb } of plan.drop) {
      state.drop(id, now());
      if (tomb) {
        await writer.flush();
        await reconcileMembership(opts.store, writer, tomb, now()); // exits anyone entered since the delete
      }
      log.info({ segment: id }, 'segment dropped');
    }
  }

  /** Waits until the store holds what the group committed, then notes that as reflected. */
  async function catchUpWithStore() {
    if (opts.storedOffsets)
      await waitForStored(committed, opts.storedOffsets, { timeoutMs: opts.storedTimeoutMs ?? 30_000, log });
    // Copies consumed from here on are checked against everything the store has registered.
    await opts.pipeline.index.refresh();
    state.reflectCommitted(await committed());
  }

  /** Takes up a new assignment: fresh state if it is stale, then announces what the store lacks. */
  async function reassign(parts: Set<number>) {
    state.assign(parts);
    if (state.staleFor(parts, await committed())) {
      log.info({ partitions: [...parts] }, 'assigned partitions consumed elsewhere; reloading state');
      await catchUpWithStore();
      state.reloadAll(); // every segment is loaded again, its changes against the store announced
      await refresh();
      return;
    }
    await resync(state.stream.segmentIds());
  }

  function every(ms: number, what: string, fn: () => Promise<void>) {
    const t = setInterval(() => {
      serial(fn).catch((err) => log.warn({ err }, `${what} failed; retrying`));
    }, ms);
    t.unref();
    timers.push(t);
  }

  return {
    name: 'segments',
    groupId,
    topics: [opts.topic],
    maxBatchSize: 5000,
    maxWaitMs: 10,
    evaluator: state.stream,
    held: () => state.held(),
    forget: (erased) =>
      serial(async () => {
        const n = state.forget(erased);
        if (n) log.info({ states: n }, 'erased people forgotten');
      }),
    refresh: () => serial(refresh),
    sweep: () => serial(sweep),
    onAssign(assigned) {
      const parts = new Set(assigned.get(opts.topic) ?? []);
      // A failure (the store is down) is retried until it succeeds or a newer assignment supersedes it.
      takeOver.start(
        () => serial(() => reassign(parts)),
        (err) => log.warn({ err }, 'taking up a new assignment failed; retrying'),
      );
    },
    async init() {
      state.usePartitioner(await opts.bus.partitioner(opts.topic));
      await catchUpWithStore();
      await serial(refresh);
      every(opts.pollMs ?? 2000, 'segment refresh', refresh);
      every(opts.sweepMs ?? 1000, 'membership sweep', sweep);
    },
    // Not serialised with other batches: the evaluator's work for a batch is synchronous, and
    // publishing is one ordered queue, so batches of several partitions share each publish.
    async handle(batch, ctx) {
      await takeOver.done(ctx);
      const firsts = await dedup.firstCopies(batch.messages);
      await write(state.consume(firsts, now(), stored()));
      state.reflected(batch);
      opts.metrics.processed.labels('segments').inc(batch.messages.length);
    },
    async close() {
      for (const t of timers) clearInterval(t);
      await serial.idle();
      const flushed = await Promise.race([
        writer.flush().then(() => true),
        new Promise((r) => setTimeout(r, 10_000, false)),
      ]);
      if (!flushed) log.warn('membership changes not yet stored at shutdown; the next start reconciles them');
      writer.close();
    },
  };
}
