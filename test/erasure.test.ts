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
