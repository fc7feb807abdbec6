import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../bin/server.ts';
import { type Config, parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { runSegmentsScenario } from './helpers/segments-scenario.ts';

// Parley embedded in this process (local log, embedded engine): segments from the API to the
// membership topic, in real time.

const key = `pk_test_admin_${randomBytes(12).toString('hex')}`;
let dir: string;
let config: Config;
let parley: Running;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-segments-e2e-'));
  config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_SINK_BATCH_WAIT_MS: '50',
  });
  parley = await startParley(config, { logger: createLogger({ level: 'silent' }), out: () => {} });
});

afterAll(async () => {
  await parley?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('segments end to end (embedded)', () => {
  it('announces entries as events arrive and exits when windows pass', async () => {
    const { enterLatencyMs, firstEnterLatencyMs } = await runSegmentsScenario(parley, config, key, {
      timeoutMs: 8000,
    });
    // A segment is picked up by the processor within its poll interval (2 s); after that, changes are prompt.
    expect(firstEnterLatencyMs).toBeLessThan(6000);
    expect(enterLatencyMs).toBeLessThan(2500);
  });
});
