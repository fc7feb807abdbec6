import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { type Store, createStore } from '../store/client.ts';
import { migrate } from '../store/migrations.ts';
import { createErasures, type ForgetListener } from './registry.ts';

// The registry tells every holder of memory of each new erasure. An erasure's "forgotten in
// memory" step waits on refresh(): it must not be satisfied by a read that began before the
// erasure was recorded, and one slow holder must not keep the others from forgetting.

const logger = createLogger({ level: 'silent' });
let dir: string;
let store: Store;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-erasures-'));
  store = await createStore({ dataDir: dir, clickhouse: { database: 'parley' } });
  await migrate(store, logger);
});

afterAll(async () => {
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the erasure registry', () => {
  it('answers a refresh only once a read that began after it has told every holder', async () => {
    const erasures = createErasures({ store, key: Buffer.alloc(32, 3), logger, refreshMs: 3_600_000 });
    await erasures.start();
    const heard: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const slow: ForgetListener = async (match) => {
      calls++;
      if (calls === 1) await gate; // the first read is held up in a holder
      for (const u of ['u_first', 'u_second']) if (match(u).length > 0) heard.push(`slow:${u}`);
    };
    const quick: ForgetListener = (match) => {
      for (const u of ['u_first', 'u_second']) if (match(u).length > 0) heard.push(`quick:${u}`);
    };
    erasures.onErased(slow);
    erasures.onErased(quick);

    await erasures.begin('u_first', null, 'test', []);
    const first = erasures.refresh(); // reads u_first, then waits in the slow holder
    await waitUntil(() => heard.includes('quick:u_first'));
    // Recorded while that read is in flight: the refresh asked for now must include it.
    await erasures.begin('u_second', null, 'test', []);
    let secondDone = false;
    const second = erasures.refresh().then(() => {
      secondDone = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(secondDone).toBe(false);
    // The quick holder forgot u_first while the slow one was still at it.
    expect(heard).toEqual(['quick:u_first']);
    release();
    await first;
    await second;
    expect(heard).toEqual(['quick:u_first', 'slow:u_first', 'slow:u_second', 'quick:u_second']);
    erasures.stop();
  });

  it('tells the other holders when one of them fails', async () => {
    const erasures = createErasures({ store, key: Buffer.alloc(32, 4), logger, refreshMs: 3_600_000 });
    await erasures.start();
    const heard: string[] = [];
    erasures.onErased(() => {
      throw new Error('broken holder');
    });
    erasures.onErased((match) => {
      if (match('u_third').length > 0) heard.push('u_third');
    });
    await erasures.begin('u_third', null, 'test', []);
    await erasures.refresh();
    expect(heard).toEqual(['u_third']);
    erasures.stop();
  });
});

async function waitUntil(ok: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
