import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../../bin/server.ts';
import { type Config, parseConfig } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { runSegmentsScenario } from '../helpers/segments-scenario.ts';
import { kafkaBrokers, unique } from './env.ts';

// The segments journey with the bus on a real Kafka broker: define segments over the API, stream
// events, and watch segment.entered / segment.exited arrive on the membership topic, including
// an exit caused only by time passing.

const brokers = kafkaBrokers();
const key = `pk_test_admin_${randomBytes(12).toString('hex')}`;
let dir: string;
let config: Config;
let parley: Running;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-segments-kafka-'));
  config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_KAFKA_BROKERS: brokers.join(','),
    PARLEY_TOPIC_PREFIX: `${unique('seg')}.`,
    PARLEY_TOPIC_PARTITIONS: '2',
    PARLEY_SINK_BATCH_WAIT_MS: '50',
  });
  parley = await startParley(config, { logger: createLogger({ level: 'silent' }), out: () => {} });
});

afterAll(async () => {
  await parley?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('segments end to end on Kafka', () => {
  it('announces entries as events arrive and exits when windows pass', async () => {
    const { enterLatencyMs } = await runSegmentsScenario(parley, config, key, { timeoutMs: 15_000 });
    expect(enterLatencyMs).toBeLessThan(5000);
  });
});
