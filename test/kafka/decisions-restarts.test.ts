import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, it } from 'vitest';
import type { Bus } from '../../core/bus/types.ts';
import { type Config, parseConfig } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { createBus, standardTopics } from '../../core/runtime.ts';
import { type Store, createStore } from '../../core/store/client.ts';
import { migrate } from '../../core/store/migrations.ts';
import { expectNoGroupsAfterRestarts } from '../helpers/engine-restarts.ts';
import { kafkaBrokers, unique } from './env.ts';

// The decision engine reads Kafka without leaving a consumer group behind, however often it starts.

const brokers = kafkaBrokers();
const prefix = `${unique('restarts')}.`;
const admin = new Kafka({ brokers, clientId: 'parley-test', logLevel: logLevel.NOTHING }).admin();
let config: Config;
let store: Store;
let bus: Bus;

beforeAll(async () => {
  config = parseConfig({
    PARLEY_DATA_DIR: await mkdtemp(join(tmpdir(), 'parley-restarts-')),
    PARLEY_KAFKA_BROKERS: brokers.join(','),
    PARLEY_TOPIC_PREFIX: prefix,
    PARLEY_TOPIC_PARTITIONS: '2',
    PARLEY_LOG_LEVEL: 'silent',
  });
  const logger = createLogger({ level: 'silent' });
  store = await createStore(config);
  await migrate(store, logger);
  bus = await createBus(config, logger);
  await bus.ensureTopics(standardTopics(config));
  await admin.connect();
});
afterAll(async () => {
  await bus?.close();
  await store?.close();
  await admin.disconnect();
});

it('three restarts of the decision engine leave no new consumer group on Kafka', async () => {
  // Only groups that name this test's topics can be the engine's: other tests share the broker.
  const groups = async () =>
    (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.includes(prefix));
  await expectNoGroupsAfterRestarts({ store, bus, config }, groups);
});
