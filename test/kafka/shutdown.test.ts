import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ParleyProcess, spawnParley, waitFor } from '../helpers/parley-process.ts';
import { kafkaBrokers, unique } from './env.ts';

// SIGTERM with a store that stopped answering (its process frozen with SIGSTOP): Parley commits what
// it has, gives up on the batch in flight, and exits within the shutdown deadline.

const key = `sd-admin-${randomBytes(12).toString('hex')}`;
let dir: string;
let store: ParleyProcess | undefined;
let parley: ParleyProcess | undefined;

afterAll(async () => {
  if (store?.child.pid) process.kill(store.child.pid, 'SIGCONT');
  await parley?.stop('SIGKILL');
  await store?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

const event = (i: number) => ({
  event_id: `sd-${i}`,
  type: 'message.received',
  occurred_at: new Date().toISOString(),
  business_id: 'sd',
  user_id: `u${i % 7}`,
  channel: 'whatsapp',
  props: {},
});

describe('shutdown', () => {
  it('exits within its deadline on SIGTERM while the store does not answer', async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-shutdown-'));
    store = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', '0'], {
      PARLEY_DATA_DIR: join(dir, 'store'),
    });
    const ch = await store.waitForOutput(/dev-clickhouse is listening on (http:\S+)/);
    parley = spawnParley('parley', ['start'], {
      PARLEY_PORT: '0',
      PARLEY_DATA_DIR: join(dir, 'parley'),
      PARLEY_KAFKA_BROKERS: kafkaBrokers().join(','),
      PARLEY_CLICKHOUSE_URL: `${ch.replace(/\/$/, '')}/parley`,
      PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
      PARLEY_TOPIC_PREFIX: `${unique('sd')}.`,
      PARLEY_SINK_BATCH_WAIT_MS: '20',
    });
    const url = await parley.waitForOutput(/Parley is listening on (http:\S+)/, 120_000);
    const post = (from: number) =>
      fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(Array.from({ length: 20 }, (_, i) => event(from + i))),
      });
    expect((await post(0)).status).toBe(202);
    await waitFor('stored', async () => {
      const res = await fetch(`${url}/v1/events?business_id=sd&limit=100`, {
        headers: { authorization: `Bearer ${key}` },
      });
      return res.status === 200 && ((await res.json()) as { events: unknown[] }).events.length === 20;
    });

    process.kill(store.child.pid as number, 'SIGSTOP');
    expect((await post(100)).status).toBe(202); // the bus still takes events; the sink cannot store them
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    parley.child.kill('SIGTERM');
    const code = await parley.exited;
    const took = Date.now() - started;
    expect(code).toBe(0);
    expect(took).toBeLessThan(13_000);
  }, 180_000);
});
