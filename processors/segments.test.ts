import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../core/bus/local.ts';
import type { Bus } from '../core/bus/types.ts';
import { EventFeed } from '../core/events/feed.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import {
  buildStoredMembersQuery,
  createMembershipWriter,
  type MembershipMessage,
  membershipMessageSchema,
  reconcileMembership,
  storedMembers,
} from '../core/segments/membership.ts';
import type { Rule } from '../core/segments/rule.ts';
import { createSegmentStore } from '../core/segments/store.ts';
import { createStore, type Store } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { runProcessors } from './runner.ts';
import { createSegmentsProcessor, type SegmentsProcessor } from './segments.ts';
import { createSink, type Sink } from './sink.ts';
import { createPipeline } from './pipeline.ts';

const EVENTS = 't.events';
const MEMBERSHIP = 't.membership';
const logger = createLogger({ level: 'silent' });
const metrics = createMetrics();
let dir: string;
let store: Store;
let bus: Bus;
const seen: MembershipMessage[] = [];
let stopWatch: () => Promise<void>;
let n = 0;

const event = (user: string, type: string, agoMs: number, extra: Record<string, unknown> = {}) => ({
  event_id: `ev${++n}`,
  type,
  occurred_at: new Date(Date.now() - agoMs).toISOString(),
  business_id: 'b1',
  user_id: user,
  thread_id: `t_${user}`,
  channel: 'sms',
  props: {},
  ...extra,
});
const publish = (events: ReturnType<typeof event>[]) =>
  bus.publish(
    EVENTS,
    events.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
  );

async function waitFor<T>(what: string, fn: () => T | undefined | false, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
/** Stored membership, once it has caught up with the topic (it is written right after publishing). */
async function storedSoon(segmentId: string, want: string[]) {
  const end = Date.now() + 8000;
  for (;;) {
    const got = [...(await storedMembers(store, segmentId))].sort();
    if (JSON.stringify(got) === JSON.stringify(want) || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const changesFor = (segmentId: string) =>
  seen
    .filter((m) => m.segment_id === segmentId)
    .map((m) => `${m.type === 'segment.entered' ? '+' : '-'}${m.user_id}`);

function processor(groupId = 'segments', storedBy?: Sink, pollMs = 150): SegmentsProcessor {
  return createSegmentsProcessor({
    pipeline: createPipeline({ store, bus, logger, metrics, dlqTopic: 'parley.events.dlq' }),
    store,
    bus,
    logger,
    metrics,
    topic: EVENTS,
    membershipTopic: MEMBERSHIP,
    groupId,
    storedOffsets: storedBy?.storedOffsets,
    pollMs,
    sweepMs: 100,
  });
}

async function define(name: string, rule: Rule, business = 'b1') {
  const s = await createSegmentStore(store).create({ name, business_id: business, rule });
  await reconcileMembership(store, createMembershipWriter({ store, bus, topic: MEMBERSHIP }), s, Date.now());
  return s;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-seg-proc-'));
  store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
  await migrate(store, logger);
  bus = await createLocalBus({ dir: join(dir, 'log'), logger });
  await bus.ensureTopics([
    { name: EVENTS, partitions: 2 },
    { name: MEMBERSHIP, partitions: 2, compacted: true },
  ]);
  const sub = await bus.subscribe({
    groupId: 'watch',
    topics: [MEMBERSHIP],
    maxWaitMs: 5,
    handler: async (b) => {
      for (const m of b.messages) seen.push(membershipMessageSchema.parse(JSON.parse(m.value.toString())));
    },
  });
  stopWatch = () => sub.stop();
});

afterAll(async () => {
  await stopWatch?.();
  await bus?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('segments processor', () => {
  it('enters on events, exits when a window passes, ignores duplicates, survives a restart and follows edits', async () => {
    // Stored history before the processor starts: u1 ordered, u2 only messaged.
    await store.client.insert({
      table: `${store.database}.events`,
      values: [
        event('u1', 'order.placed', 60_000, { props: { value: 5 } }),
        event('u2', 'message.received', 60_000),
      ].map((e) => ({ ...e, props: JSON.stringify(e.props), ingested_at: new Date().toISOString() })),
      format: 'JSONEachRow',
    });
    const buyers = await define('buyers', { performed: 'order.placed' });
    const recent = await define('recent', { performed: 'message.received', within_seconds: 2 });
    const notBuyers = await define('not buyers', { not: { performed: 'order.placed' } });
    await waitFor('initial members', () => seen.length >= 2);
    expect(changesFor(buyers.id)).toEqual(['+u1']);
    expect(changesFor(notBuyers.id)).toEqual(['+u2']);
    expect(changesFor(recent.id)).toEqual([]);

    const proc = processor();
    const sink = createSink({
      pipeline: createPipeline({ store, bus, logger, metrics, dlqTopic: 'parley.events.dlq' }),
      store,
      bus,
      logger,
      metrics,
      topic: EVENTS,
      groupId: 'sink',
      batchSize: 1000,
      batchWaitMs: 20,
    });
    let running = await runProcessors(new EventFeed(bus), [sink, proc], logger, metrics);
    expect(proc.evaluator.members(buyers.id)).toEqual(['u1']);
    expect(proc.evaluator.members(notBuyers.id)).toEqual(['u2']);

    // u2 messages now: enters "recent" at once and leaves it about 2 s later with no further event.
    const msg = event('u2', 'message.received', 0);
    await publish([msg]);
    await waitFor('u2 enters recent', () => changesFor(recent.id).includes('+u2'));
    const entered = Date.now();
    await publish([msg, msg]); // duplicates change nothing
    await waitFor('u2 exits recent by time alone', () => changesFor(recent.id).includes('-u2'), 12_000);
    expect(Date.now() - entered).toBeLessThan(10_000);
    expect(changesFor(recent.id)).toEqual(['+u2', '-u2']);

    // A late order (an hour old) still makes u2 a buyer, and no longer a not-buyer.
    await publish([event('u2', 'order.placed', 3_600_000, { props: { value: 1 } })]);
    await waitFor('u2 enters buyers', () => changesFor(buyers.id).includes('+u2'));
    await waitFor('u2 exits not buyers', () => changesFor(notBuyers.id).includes('-u2'));
    // A new user who only messages is in the universe: not a buyer.
    await publish([event('u3', 'message.received', 0)]);
    await waitFor('u3 enters not buyers', () => changesFor(notBuyers.id).includes('+u3'));
    await waitFor('u3 exits recent', () => changesFor(recent.id).includes('-u3'), 12_000);
    expect(await storedSoon(buyers.id, ['u1', 'u2'])).toEqual(['u1', 'u2']);
    expect(await storedSoon(recent.id, [])).toEqual([]);

    // Restart: state comes back from the store and committed offsets; nothing is announced twice.
    await running.stop();
    const before = seen.length;
    const proc2 = processor();
    running = await runProcessors(new EventFeed(bus), [sink, proc2], logger, metrics);
    await new Promise((r) => setTimeout(r, 400));
    expect(seen.length).toBe(before);
    expect(proc2.evaluator.members(buyers.id)).toEqual(['u1', 'u2']);
    expect(proc2.evaluator.members(notBuyers.id)).toEqual(['u3']);

    // An edit made elsewhere (no reconcile) is picked up by polling and reconciled.
    await createSegmentStore(store).update(buyers, {
      name: 'big buyers',
      business_id: 'b1',
      rule: { performed: 'order.placed', where: { 'props.value': { gte: 5 } } },
    });
    await waitFor('u2 leaves big buyers', () => changesFor(buyers.id).includes('-u2'));
    expect(proc2.evaluator.members(buyers.id)).toEqual(['u1']);
    // A delete made elsewhere: members exit.
    await createSegmentStore(store).remove({ ...buyers, version: 2 });
    await waitFor('u1 exits deleted segment', () => changesFor(buyers.id).includes('-u1'));
    expect(proc2.evaluator.segment(buyers.id)).toBeUndefined();
    await running.stop();

    const counted = await metrics.registry.getSingleMetricAsString('parley_segment_membership_changes_total');
    expect(counted).toMatch(/change="entered"} [1-9]/);
    expect(counted).toMatch(/change="exited"} [1-9]/);

    // Versions only grow per (segment, user).
    const last = new Map<string, number>();
    for (const m of seen) {
      const k = `${m.segment_id}:${m.user_id}`;
      expect(m.version).toBeGreaterThan(last.get(k) ?? 0);
      last.set(k, m.version);
    }
  });

  it('after a restart, loads state only once the sink has stored what was already consumed', async () => {
    const ordered = await define('ordered', { performed: 'order.placed' }, 'b9');
    // The segments group consumes an order while no sink runs: the event is in no store yet.
    const first = processor('segments-b');
    let running = await runProcessors(new EventFeed(bus), [first], logger, metrics);
    await publish([event('z1', 'order.placed', 0, { business_id: 'b9', props: { value: 3 } })]);
    await waitFor('z1 enters', () => changesFor(ordered.id).includes('+z1'));
    await running.stop();
    // Restarted beside a sink that has not stored it yet: the rebuild waits for the sink.
    const sink = createSink({
      pipeline: createPipeline({ store, bus, logger, metrics, dlqTopic: 'parley.events.dlq' }),
      store,
      bus,
      logger,
      metrics,
      topic: EVENTS,
      groupId: 'sink-b',
      batchSize: 1000,
      batchWaitMs: 600,
    });
    const second = processor('segments-b', sink);
    running = await runProcessors(new EventFeed(bus), [sink, second], logger, metrics);
    expect(second.evaluator.members(ordered.id)).toEqual(['z1']);
    await new Promise((r) => setTimeout(r, 400));
    expect(changesFor(ordered.id)).toEqual(['+z1']);
    await running.stop();
  });

  it('corrects membership written by a racing writer right after a segment was loaded', async () => {
    const seg = await createSegmentStore(store).create({
      name: 'raced',
      business_id: 'b1',
      rule: { performed: 'order.placed', where: { 'props.value': { gte: 5 } } },
    });
    const proc = processor('segments-c', undefined, 3_600_000); // polls only when told to
    const running = await runProcessors(new EventFeed(bus), [proc], logger, metrics);
    await waitFor('u1 enters raced', () => changesFor(seg.id).includes('+u1'));
    // A late writer (e.g. the API's initial evaluation) announces a user the rule does not hold for.
    await createMembershipWriter({ store, bus, topic: MEMBERSHIP }).write([
      { segmentId: seg.id, userId: 'u2', businessId: 'b1', member: true, atMs: Date.now() },
    ]);
    await proc.refresh();
    await waitFor('u2 is corrected', () => changesFor(seg.id).includes('-u2'));
    expect(await storedSoon(seg.id, ['u1'])).toEqual(['u1']);
    await running.stop();
  });

  it('dates each member from the event that made the rule true, keeps it across restarts, and re-dates a re-entry', async () => {
    const DAY = 86_400_000;
    const biz = 'b_since';
    const at = (agoMs: number) => Date.now() - agoMs;
    const since = async (segmentId: string) => {
      const rs = await store.client.query({
        ...buildStoredMembersQuery(store.database, { segmentId, limit: 100 }),
        format: 'JSONEachRow',
      });
      const rows = await rs.json<{ user_id: string; since_ms: number | string }>();
      return Object.fromEntries(rows.map((r) => [r.user_id, Number(r.since_ms)]));
    };
    const storedSince = async (segmentId: string, users: string[]) => {
      const end = Date.now() + 8000;
      for (;;) {
        const got = await since(segmentId);
        if (users.every((u) => u in got) || Date.now() > end) return got;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    // Stored history: h1 messaged 5, 4 and 3 days ago, so has been a regular since 3 days ago.
    const hist = [5, 4, 3].map((d) => event('h1', 'message.received', d * DAY, { business_id: biz }));
    await store.client.insert({
      table: `${store.database}.events`,
      values: hist.map((e) => ({ ...e, props: '{}', ingested_at: new Date().toISOString() })),
      format: 'JSONEachRow',
    });
    const rule: Rule = { performed: 'message.received', count: { gte: 3 }, within_seconds: 7 * 86_400 };
    const segs = createSegmentStore(store);
    const regulars = await segs.create({ name: 'regulars', business_id: biz, rule }, at(10 * DAY));
    const writer = createMembershipWriter({ store, bus, topic: MEMBERSHIP });
    await reconcileMembership(store, writer, regulars, Date.now());
    expect(await since(regulars.id)).toEqual({ h1: Date.parse(hist[2].occurred_at) });

    const sink = createSink({
      pipeline: createPipeline({ store, bus, logger, metrics, dlqTopic: 'parley.events.dlq' }),
      store,
      bus,
      logger,
      metrics,
      topic: EVENTS,
      groupId: 'sink',
      batchSize: 1000,
      batchWaitMs: 20,
    });
    let running = await runProcessors(
      new EventFeed(bus),
      [sink, processor('segments-since', sink)],
      logger,
      metrics,
    );
    // s1's third message (2 days ago) arrives now: s1 entered 2 days ago, 8 days after the segment was made.
    const live = [4, 3, 2].map((d) => event('s1', 'message.received', d * DAY, { business_id: biz }));
    await publish(live);
    await waitFor('s1 enters regulars', () => changesFor(regulars.id).includes('+s1'));
    const expected = { h1: Date.parse(hist[2].occurred_at), s1: Date.parse(live[2].occurred_at) };
    expect(await storedSince(regulars.id, ['h1', 's1'])).toEqual(expected);

    // Enters with a message, exits when its 2 s window passes, re-enters with the next message.
    const active = await segs.create({
      name: 'active',
      business_id: biz,
      rule: { performed: 'message.received', within_seconds: 2 },
    });
    await new Promise((r) => setTimeout(r, 400)); // polled and loaded
    const m1 = event('a1', 'message.received', 500, { business_id: biz });
    await publish([m1]);
    await waitFor('a1 enters active', () => changesFor(active.id).includes('+a1'));
    expect(await storedSince(active.id, ['a1'])).toEqual({ a1: Date.parse(m1.occurred_at) });
    await waitFor('a1 exits active', () => changesFor(active.id).includes('-a1'), 12_000);
    const m2 = event('a1', 'message.received', 0, { business_id: biz }); // after the exit
    await publish([m2]);
    await waitFor('a1 enters again', () => changesFor(active.id).filter((c) => c === '+a1').length === 2);
    expect(await storedSince(active.id, ['a1'])).toEqual({ a1: Date.parse(m2.occurred_at) });

    // A restart reloads from the store and the API reconciles again: nobody's since moves.
    await running.stop();
    running = await runProcessors(
      new EventFeed(bus),
      [sink, processor('segments-since', sink)],
      logger,
      metrics,
    );
    await new Promise((r) => setTimeout(r, 400));
    await reconcileMembership(store, writer, regulars, Date.now());
    expect(await since(regulars.id)).toEqual(expected);
    await running.stop();
  });
});
