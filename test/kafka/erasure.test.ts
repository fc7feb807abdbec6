import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { it } from 'vitest';
import { parseConfig } from '../../core/config.ts';
import { runErasureScenario } from '../helpers/erasure-scenario.ts';
import { kafkaBrokers, unique } from './env.ts';

// Erasure on Kafka: the same journey, and the replay is every consumer group reset to the
// earliest offset of topics that still hold the erased person's events.

const brokers = kafkaBrokers();

it('erases a person everywhere on Kafka, and a replay of the whole topic brings nothing back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-erasure-kafka-'));
  const key = `pk_test_admin_${randomBytes(12).toString('hex')}`;
  const prefix = `${unique('erase')}.`;
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_KAFKA_BROKERS: brokers.join(','),
    PARLEY_TOPIC_PREFIX: prefix,
    PARLEY_TOPIC_PARTITIONS: '2',
    PARLEY_HASH_SECRET: randomBytes(16).toString('hex'),
    PARLEY_SINK_BATCH_WAIT_MS: '20',
  });
  const admin = new Kafka({ brokers, clientId: 'erasure-test', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await runErasureScenario({
      config,
      key,
      async resetGroups() {
        for (const g of ['parley-sink', 'parley-attribution', 'parley-segments'])
          await admin.resetOffsets({
            groupId: `${prefix}${g}`,
            topic: `${prefix}parley.events`,
            earliest: true,
          });
      },
    });
  } finally {
    await admin.disconnect();
    await rm(dir, { recursive: true, force: true });
  }
}, 180_000);
