import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../../bin/server.ts';
import { parseConfig } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { checkHistory, type Harness, historyArb } from '../helpers/dedup-scenario.ts';
import { kafkaBrokers, unique } from './env.ts';

// The duplicates property on Kafka: several partitions, copies under another user_id on another
// partition, consumer groups that resume from Kafka's committed offsets after a restart.

const adminKey = 'pk_dedup_kafka_admin_0123456789ab';
const prefix = `${unique('dedup')}.`;
let dir: string;
let running: Running;
const start = () =>
  startParley(
    parseConfig({
      PARLEY_DATA_DIR: dir,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'silent',
      PARLEY_KAFKA_BROKERS: kafkaBrokers().join(','),
      PARLEY_TOPIC_PREFIX: prefix,
      PARLEY_TOPIC_PARTITIONS: '3',
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
  dir = await mkdtemp(join(tmpdir(), 'parley-dedup-kafka-'));
  running = await start();
}, 120_000);
afterAll(async () => {
  await running?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('duplicates on Kafka', () => {
  it('every report equals the reference over the first accepted copies', async () => {
    let run = 0;
    let copies = 0;
    await fc.assert(
      fc.asyncProperty(historyArb, async (history) => {
        const r = await checkHistory(harness, history, `dk${++run}`);
        copies += r.sent - r.firsts;
      }),
      { numRuns: 4, endOnFailure: true },
    );
    expect(copies).toBeGreaterThan(0);
  }, 600_000);
});
