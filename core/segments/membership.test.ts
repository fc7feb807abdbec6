import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../bus/local.ts';
import type { Bus } from '../bus/types.ts';
import { createLogger } from '../log.ts';
import { createStore, type Store } from '../store/client.ts';
import { migrate } from '../store/migrations.ts';
import {
  buildStoredMembersQuery,
  createMembershipWriter,
  createVersionClock,
  type MembershipMessage,
  membershipMessageSchema,
  storedMembers,
} from './membership.ts';

const TOPIC = 'm';
let dir: string;
let store: Store;
let bus: Bus;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-seg-membership-'));
  const logger = createLogger({ level: 'silent' });
  store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
  await migrate(store, logger);
  bus = await createLocalBus({ dir: join(dir, 'log'), logger });
  await bus.ensureTopics([{ name: TOPIC, partitions: 1, compacted: true }]);
});
afterAll(async () => {
  await bus?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('membership', () => {
  it('versions strictly increase even when the clock stands still or steps back', () => {
    let t = 1000;
    const next = createVersionClock(() => t);
    const a = next();
    const b = next();
    t = 900;
    const c = next();
    expect(a).toBe(1_000_000);
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);
  });

  it('builds the members page query with bound values', () => {
    const q = buildStoredMembersQuery('parley', { segmentId: "s'1", limit: 10, after: 'u5' });
    expect(q.query).toContain('FROM parley.segment_membership FINAL');
    expect(q.query).toContain('user_id > {after:String}');
    expect(q.query).not.toContain("s'1");
    expect(q.query_params).toEqual({ segment_id: "s'1", limit: 10, after: 'u5' });
  });

  it('publishes before storing; the latest version per user decides; pages follow user_id', async () => {
    const writer = createMembershipWriter({ store, bus, topic: TOPIC });
    const at = Date.parse('2026-03-10T12:00:00Z');
    await writer.publish([
      { segmentId: 's1', userId: 'u2', businessId: 'b1', member: true, atMs: at },
      { segmentId: 's1', userId: 'u1', businessId: 'b1', member: true, atMs: at },
      { segmentId: 's1', userId: 'u3', member: true, atMs: at },
    ]);
    await writer.write([{ segmentId: 's1', userId: 'u2', businessId: 'b1', member: false, atMs: at + 1 }]);
    await writer.flush();
    expect([...(await storedMembers(store, 's1'))].sort()).toEqual(['u1', 'u3']);

    const page = async (after?: string) =>
      (
        await (
          await store.client.query({
            ...buildStoredMembersQuery(store.database, { segmentId: 's1', limit: 1, after }),
            format: 'JSONEachRow',
          })
        ).json<{ user_id: string }>()
      ).map((r) => r.user_id);
    expect(await page()).toEqual(['u1']);
    expect(await page('u1')).toEqual(['u3']);
    expect(await page('u3')).toEqual([]);

    const got: MembershipMessage[] = [];
    const sub = await bus.subscribe({
      groupId: 'read',
      topics: [TOPIC],
      maxWaitMs: 5,
      handler: async (b) =>
        void got.push(
          ...b.messages.map((m) => membershipMessageSchema.parse(JSON.parse(m.value.toString()))),
        ),
    });
    const end = Date.now() + 5000;
    while (got.length < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await sub.stop();
    expect(got.map((m) => `${m.type}:${m.user_id}:${m.business_id}`)).toEqual([
      'segment.entered:u2:b1',
      'segment.entered:u1:b1',
      'segment.entered:u3:null',
      'segment.exited:u2:b1',
    ]);
    expect(got[3].version).toBeGreaterThan(got[0].version);
    expect(got[0].at).toBe('2026-03-10T12:00:00.000Z');
  });

  it('keeps changes queued when publishing fails and sends them, in order, with the next call', async () => {
    let fail = true;
    let calls = 0;
    const flaky: Bus = {
      ...bus,
      publish: async (topic, messages) => {
        calls++;
        if (fail) throw new Error('bus down');
        return bus.publish(topic, messages);
      },
    };
    const writer = createMembershipWriter({ store, bus: flaky, topic: TOPIC });
    const at = Date.parse('2026-03-10T12:00:00Z');
    await expect(writer.publish([{ segmentId: 's2', userId: 'a', member: true, atMs: at }])).rejects.toThrow(
      'bus down',
    );
    fail = false;
    await Promise.all([
      writer.publish([]),
      writer.publish([{ segmentId: 's2', userId: 'b', member: true, atMs: at }]),
    ]);
    await writer.flush();
    expect([...(await storedMembers(store, 's2'))].sort()).toEqual(['a', 'b']);
    expect(calls).toBeGreaterThanOrEqual(2);
    await writer.publish([]);
    const before = calls;
    await writer.flush();
    expect(calls).toBe(before); // nothing left to send
  });
});
