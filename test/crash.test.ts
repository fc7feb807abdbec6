import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parseConfig } from '../core/config.ts';
import { createStore } from '../core/store/client.ts';
import { newKey } from './helpers/app.ts';
import { type Proc, freePort, metric, spawnIn, waitFor, waitHealthy } from './helpers/process.ts';

// Crash safety on the embedded defaults: ingest continuously, SIGKILL the process several times,
// restart it, and check that every event that got a 202 is stored exactly once.

const KILLS = 4;
let proc: Proc | undefined;
afterAll(async () => {
  proc?.kill('SIGKILL');
  await proc?.exited;
});

it(`survives ${KILLS} SIGKILLs while ingesting: every acknowledged event stored exactly once`, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-crash-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const key = newKey('admin');
  const env = {
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: String(port),
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
  };
  const start = async () => {
    proc = spawnIn('node', ['bin/parley.js', 'start'], env);
    await waitHealthy(url, proc);
  };

  const acked = new Set<string>();
  let sent = 0;
  let failed = 0;
  let seq = 0;
  let running = true;
  // Several concurrent clients, each sending batches of 250 with unique ids, re-sending nothing.
  const client = async (c: number) => {
    while (running) {
      const batch = Array.from({ length: 250 }, () => {
        const i = seq++;
        return {
          event_id: `crash-${c}-${i}`,
          type: 'message.received',
          occurred_at: new Date(Date.now() - 1000).toISOString(),
          business_id: `b${i % 3}`,
          user_id: `u${i % 500}`,
          channel: 'sms',
          props: { text_length: i % 100 },
        };
      });
      sent += batch.length;
      try {
        const res = await fetch(`${url}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        });
        if (res.status === 202) for (const e of batch) acked.add(e.event_id);
        else failed++;
      } catch {
        failed++;
        await new Promise((r) => setTimeout(r, 50)); // the server is down: wait for it
      }
    }
  };

  await start();
  const clients = [0, 1, 2].map(client);
  for (let k = 0; k < KILLS; k++) {
    await new Promise((r) => setTimeout(r, 700 + Math.random() * 800));
    proc!.kill('SIGKILL');
    await proc!.exited;
    await start();
  }
  await new Promise((r) => setTimeout(r, 500));
  running = false;
  await Promise.all(clients);
  expect(acked.size).toBeGreaterThan(5000);
  expect(failed).toBeGreaterThan(0); // some requests did meet a dead server

  // Wait until the sink has committed everything, then stop cleanly and look at the store.
  await waitFor(
    'the sink to catch up',
    async () => (await metric(url, key, 'parley_processor_lag_messages', { group: 'parley-sink' })) === 0,
    60_000,
    250,
  );
  proc!.kill('SIGTERM');
  expect(await proc!.exited).toBe(0); // a clean, drained shutdown
  proc = undefined;

  const store = await createStore(parseConfig({ PARLEY_DATA_DIR: dir }));
  try {
    const rs = await store.client.query({
      query: `SELECT event_id FROM ${store.database}.events FINAL`,
      format: 'JSONCompactEachRow',
    });
    const ids = (await rs.json<[string]>()).map((r) => r[0]);
    const stored = new Set(ids);
    expect(ids.length).toBe(stored.size); // nothing counted twice
    expect([...acked].filter((id) => !stored.has(id))).toEqual([]); // nothing acknowledged was lost
    expect(stored.size).toBeLessThanOrEqual(sent);
  } finally {
    await store.close();
  }
}, 240_000);
