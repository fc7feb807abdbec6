import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseConfig } from '../core/config.ts';
import { ErasedSet, bucketOf, userHasher, withoutErased } from '../core/erasure/filter.ts';
import { EventMessage } from '../core/events/message.ts';
import { runErasureScenario } from './helpers/erasure-scenario.ts';

it('erases a person everywhere on the embedded bus, and a replay of the whole log brings nothing back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-erasure-'));
  const key = `pk_test_admin_${randomBytes(12).toString('hex')}`;
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_SINK_BATCH_WAIT_MS: '20',
  });
  try {
    await runErasureScenario({
      config,
      key,
      resetGroups: () => rm(join(dir, 'log', '_groups'), { recursive: true, force: true }),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);

it('filters a batch and maps the finished prefix back to the whole batch', async () => {
  const set = new ErasedSet(userHasher(Buffer.from('k')));
  set.add({ userHash: set.hash('gone'), bucket: bucketOf('gone'), businessId: null, atMs: 1000 });
  const msg = (key: string, ts: number, offset: number) =>
    new EventMessage({
      topic: 't',
      partition: 0,
      offset: BigInt(offset),
      key,
      value: Buffer.from(JSON.stringify({ user_id: key, business_id: 'b' })),
      timestamp: ts,
      headers: {},
    });
  const batch = {
    topic: 't',
    partition: 0,
    messages: [msg('a', 1, 0), msg('gone', 900, 1), msg('b', 2, 2), msg('gone', 2000, 3)],
  };
  let seen: string[] = [];
  const handler = withoutErased(set, async (b) => {
    seen = b.messages.map((m) => `${m.key}@${m.offset}`);
    return 1; // finished only the first kept message
  });
  const ctx = { heartbeat: async () => {}, signal: new AbortController().signal };
  expect(await handler(batch, ctx)).toBe(2); // kept[1] is message 2: commit 0 and 1
  expect(seen).toEqual(['a@0', 'b@2', 'gone@3']); // after the erasure, the person is back
});

it('treats a membership change dated before an erasure as erased, however late it is published', () => {
  const set = new ErasedSet(userHasher(Buffer.from('k')));
  set.add({ userHash: set.hash('gone'), bucket: bucketOf('gone'), businessId: null, atMs: 10_000 });
  set.add({ userHash: set.hash('left_b2'), bucket: bucketOf('left_b2'), businessId: 'b2', atMs: 10_000 });
  const published = (user: string, business: string, at: number, ts: number) => {
    const change = {
      type: 'segment.entered',
      segment_id: 's',
      user_id: user,
      business_id: business,
      at: new Date(at).toISOString(),
    };
    const m = new EventMessage({
      topic: 'm',
      partition: 0,
      offset: 0n,
      key: `s:${user}`,
      value: Buffer.from(JSON.stringify(change)),
      timestamp: ts,
      headers: {},
    });
    return set.coversMembership(m, change);
  };
  // Published after the erasure, about an entry before it: erased.
  expect(published('gone', 'b1', 5_000, 20_000)).toBe(true);
  // Published before the erasure: erased, whatever its date.
  expect(published('gone', 'b1', 15_000, 9_000)).toBe(true);
  // An entry after the erasure, from new data: the person is back.
  expect(published('gone', 'b1', 15_000, 20_000)).toBe(false);
  // A business-scoped erasure covers that business only.
  expect(published('left_b2', 'b2', 5_000, 20_000)).toBe(true);
  expect(published('left_b2', 'b1', 5_000, 20_000)).toBe(false);
  // Someone else.
  expect(published('kept', 'b1', 5_000, 20_000)).toBe(false);
});
