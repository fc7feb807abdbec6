import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBus } from '../../core/bus/kafka.ts';
import type { Bus } from '../../core/bus/types.ts';
import { EventFeed } from '../../core/events/feed.ts';
import { createLogger } from '../../core/log.ts';
import { createMetrics } from '../../core/metrics.ts';
import {
  createMembershipWriter,
  type MembershipMessage,
  membershipMessageSchema,
  reconcileMembership,
} from '../../core/segments/membership.ts';
import type { Rule } from '../../core/segments/rule.ts';
import { createSegmentStore } from '../../core/segments/store.ts';
import { createStore, type Store } from '../../core/store/client.ts';
import { migrate } from '../../core/store/migrations.ts';
import { runProcessors } from '../../processors/runner.ts';
import { createSegmentsProcessor, type SegmentsProcessor } from '../../processors/segments.ts';
import { createSink } from '../../processors/sink.ts';
import { kafkaBrokers, unique } from './env.ts';
import { createPipeline } from '../../processors/pipeline.ts';

// Two segments processors in one consumer group on a real broker: each announces the changes of
// the users keyed to its partitions, and when one leaves, the other takes its partitions over
// with fresh state, so exits by time of users the departed member announced still come.

const brokers = kafkaBrokers();
const prefix = `${unique('seggroup')}.`;
const EVENTS = `${prefix}events`;
const MEMBERSHIP = `${prefix}membership`;
const logger = createLogger({ level: 'silent' });
const metrics = createMetrics();
const WINDOW_S = 6;
let dir: string;
let store: Store;
const buses: Bus[] = [];
const seen: MembershipMessage[] = [];
let n = 0;

const bus = async (name: string) => {
  const b = await createKafkaBus({
    brokers,
    clientId: name,
    logger,
    partitions: 4,
    replication: 1,
    sessionTimeoutMs: 6000,
    heartbeatIntervalMs: 500,
  });
  buses.push(b);
  return b;
};

const event = (user: string, type: string, props: Record<string, unknown> = {}) => ({
  event_id: `ev${++n}`,
  type,
  occurred_at: new Date().toISOString(),
  business_id: 'b1',
  user_id: user,
  thread_id: `t_${user}`,
  channel: 'sms',
  props,
});

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Each user's announced changes, with repeats of the same state folded. */
function transitions(segmentId: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of seen) {
    if (m.segment_id !== segmentId) continue;
    const list = out.get(m.user_id) ?? out.set(m.user_id, []).get(m.user_id)!;
    const t = m.type === 'segment.entered' ? '+' : '-';
    if (list.at(-1) !== t) list.push(t);
  }
  return out;
}

async function define(bus: Bus, name: string, rule: Rule) {
  const s = await createSegmentStore(store).create({ name, business_id: 'b1', rule });
  await reconcileMembership(store, createMembershipWriter({ store, bus, topic: MEMBERSHIP }), s, Date.now());
  return s;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-seg-group-'));
  store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
  await migrate(store, logger);
});

afterAll(async () => {
  for (const b of buses) await b.close().catch(() => {});
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('segments processors sharing a consumer group on Kafka', () => {
  it('split the users by partition and hand them over on a rebalance, exits by time included', async () => {
    const main = await bus('main');
    await main.ensureTopics([
      { name: EVENTS, partitions: 4 },
      { name: MEMBERSHIP, partitions: 4, compacted: true },
    ]);
    const watch = await main.subscribe({
      groupId: `${prefix}watch`,
      topics: [MEMBERSHIP],
      maxWaitMs: 5,
      handler: async (b) => {
        for (const m of b.messages) seen.push(membershipMessageSchema.parse(JSON.parse(m.value.toString())));
      },
    });
    await watch.ready;
    const recent = await define(main, 'recent', { performed: 'message.received', within_seconds: WINDOW_S });
    const buyers = await define(main, 'buyers', { performed: 'order.placed' });

    const sink = createSink({
      pipeline: createPipeline({ store, bus: main, logger, metrics, dlqTopic: `${prefix}dlq` }),
      store,
      bus: main,
      logger,
      metrics,
      topic: EVENTS,
      groupId: `${prefix}sink`,
      batchSize: 1000,
      batchWaitMs: 20,
    });
    const member = async (name: string) => {
      const b = await bus(name);
      const p = createSegmentsProcessor({
        pipeline: createPipeline({ store, bus: b, logger, metrics, dlqTopic: `${prefix}dlq` }),
        store,
        bus: b,
        logger,
        metrics,
        topic: EVENTS,
        membershipTopic: MEMBERSHIP,
        groupId: `${prefix}segments`,
        storedOffsets: sink.storedOffsets,
        pollMs: 500,
        sweepMs: 100,
      });
      return { p, running: await runProcessors(new EventFeed(b), [p], logger, metrics) };
    };
    const sinkRun = await runProcessors(new EventFeed(await bus('sink')), [sink], logger, metrics);
    const a = await member('a');
    const b = await member('b');
    const split = (x: SegmentsProcessor, y: SegmentsProcessor) =>
      (x.held()?.length ?? 0) > 0 && (y.held()?.length ?? 0) > 0 && x.held()!.length + y.held()!.length === 4;
    await waitFor('both members hold partitions', () => split(a.p, b.p));
    const heldByB = new Set(b.p.held());
    const partitionOf = await main.partitioner(EVENTS);

    // Users on every partition message (entering "recent") and order (entering "buyers").
    const users = Array.from({ length: 40 }, (_, i) => `user${i}`);
    expect(new Set(users.map(partitionOf)).size).toBe(4);
    await main.publish(
      EVENTS,
      users
        .flatMap((u) => [event(u, 'message.received'), event(u, 'order.placed', { value: 1 })])
        .map((e) => ({
          key: e.user_id,
          value: JSON.stringify(e),
        })),
    );
    await waitFor('every user enters both segments', () => {
      const r = transitions(recent.id);
      const o = transitions(buyers.id);
      return users.every((u) => r.get(u)?.[0] === '+' && o.get(u)?.[0] === '+');
    });

    // b leaves while its users are still in their window: a takes its partitions over and
    // announces their exits when the window passes.
    await b.running.stop();
    await waitFor('a holds every partition', () => a.p.held()?.length === 4);
    const movedUsers = users.filter((u) => heldByB.has(partitionOf(u)));
    expect(movedUsers.length).toBeGreaterThan(0);
    await waitFor(
      'every user exits recent by time alone',
      () => users.every((u) => transitions(recent.id).get(u)?.at(-1) === '-'),
      WINDOW_S * 1000 + 20_000,
    );
    const r = transitions(recent.id);
    for (const u of users) expect(r.get(u), u).toEqual(['+', '-']);

    // A moved user's new event is handled by a: a message brings it back into "recent", and it
    // stays a buyer (a's reloaded state knows the order b consumed).
    const back = movedUsers[0];
    await main.publish(EVENTS, [{ key: back, value: JSON.stringify(event(back, 'message.received')) }]);
    await waitFor('the moved user re-enters recent', () => transitions(recent.id).get(back)?.at(-1) === '+');
    await new Promise((r) => setTimeout(r, 1000));
    const o = transitions(buyers.id);
    for (const u of users) expect(o.get(u), u).toEqual(['+']);
    expect(a.p.evaluator.members(buyers.id)).toEqual([...users].sort());

    await a.running.stop();
    await sinkRun.stop();
    await watch.stop();
  });
});
