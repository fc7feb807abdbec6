import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { checkHistory, type Harness, historyArb } from './helpers/dedup-scenario.ts';

// One event per event_id, the first accepted copy, in every report, on the embedded log: random
// histories of re-sent events (re-stamped, changed, reordered, across batches, across a restart).

const adminKey = 'pk_dedup_admin_0123456789abcdef';
let dir: string;
let running: Running;
const start = () =>
  startParley(
    parseConfig({
      PARLEY_DATA_DIR: dir,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'silent',
      PARLEY_SINK_BATCH_WAIT_MS: '20',
      PARLEY_API_KEYS: JSON.stringify([{ key: adminKey, role: 'admin' }]),
    }),
    { logger: createLogger({ level: 'silent' }), out: () => {} },
  );
const harness: Harness = {
  running: () => running,
  async restart() {
    await running.stop();
    running = await start();
  },
  adminKey,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-dedup-'));
  running = await start();
});
afterAll(async () => {
  await running?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('duplicates on the embedded log', () => {
  it('every report equals the reference over the first accepted copies', async () => {
    let run = 0;
    let copies = 0;
    await fc.assert(
      fc.asyncProperty(historyArb, async (history) => {
        const r = await checkHistory(harness, history, `dd${++run}`);
        copies += r.sent - r.firsts;
      }),
      // A failing history is reported as it is (each run takes seconds: shrinking would outlast
      // the test's time).
      { numRuns: 6, endOnFailure: true },
    );
    expect(copies).toBeGreaterThan(0); // the histories did hold later copies
  }, 420_000);
});
