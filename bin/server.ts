import type { Bus } from '../core/bus/types.ts';
import type { Config } from '../core/config.ts';
import { topicNames } from '../core/config.ts';
import { createAuth, ensureFirstAdminKey } from '../core/http/auth.ts';
import type { App } from '../core/http/fastify.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { createBus, lockDataDir, standardTopics } from '../core/runtime.ts';
import { type Store, createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { createAttributionProcessor } from '../processors/attribution.ts';
import { STOP_DEADLINE_MS, runProcessors, settlesWithin } from '../processors/runner.ts';
import { createSegmentsProcessor } from '../processors/segments.ts';
import { createPipeline } from '../processors/pipeline.ts';
import { createSink } from '../processors/sink.ts';
import { ALL_ROLES, type Role, buildApp } from './app.ts';

export type Running = {
  app: App;
  config: Config;
  url: string;
  stop(): Promise<void>;
  adminKey?: string;
  store: Store;
  bus: Bus;
};

/** Starts the given roles in this process, listening on config.host:port. */
export async function startParley(
  config: Config,
  opts: { roles?: Role[]; logger?: Logger; out?: (line: string) => void } = {},
): Promise<Running> {
  const roles = opts.roles ?? ALL_ROLES;
  const logger = opts.logger ?? createLogger({ level: config.logLevel });
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const embedded = !config.kafka || !config.clickhouse.url;
  if (roles.length < ALL_ROLES.length && embedded) {
    throw new Error(
      'Running roles as separate processes needs PARLEY_KAFKA_BROKERS and PARLEY_CLICKHOUSE_URL: the embedded log and engine belong to one process',
    );
  }
  const unlock = embedded ? await lockDataDir(config.dataDir) : async () => {};
  const metrics = createMetrics();
  const store = await createStore(config);
  await migrate(store, logger);
  const bus = await createBus(config, logger);
  await bus.ensureTopics(standardTopics(config));

  let adminKey: string | undefined;
  if (!config.apiKeys?.length) {
    adminKey = await ensureFirstAdminKey(store);
    if (adminKey) {
      out('Parley made an admin API key. It is shown only this once; store it now:');
      out(`  PARLEY_ADMIN_KEY=${adminKey}`);
    }
  }
  const auth = createAuth({ keys: config.apiKeys, store });

  const pipeline = createPipeline({ store, bus, logger, metrics, dlqTopic: topicNames(config).dlq });
  const sinkGroup = `${config.topics.prefix}parley-sink`;
  // On Kafka another process's sink may store the partitions this one's processors read.
  if (roles.includes('processors') && config.kafka) pipeline.index.refreshEvery(5000);
  const processors = roles.includes('processors')
    ? await runProcessors(
        bus,
        [
          createSink({
            store,
            logger,
            metrics,
            topic: topicNames(config).events,
            // Deployments that share a Kafka cluster (by topic prefix) must not share groups.
            groupId: sinkGroup,
            batchSize: config.sink.batchSize,
            batchWaitMs: config.sink.batchWaitMs,
            pipeline,
          }),
          createAttributionProcessor({
            store,
            logger,
            metrics,
            topic: topicNames(config).events,
            groupId: `${config.topics.prefix}parley-attribution`,
            pipeline,
            storedBy: { bus, group: sinkGroup },
          }),
          ...(config.segments.processor
            ? [
                createSegmentsProcessor({
                  store,
                  bus,
                  logger,
                  metrics,
                  topic: topicNames(config).events,
                  membershipTopic: topicNames(config).membership,
                  groupId: `${config.topics.prefix}parley-segments`,
                  storedBy: sinkGroup,
                  pipeline,
                }),
              ]
            : []),
        ],
        logger,
        metrics,
      )
    : undefined;

  const app = await buildApp(config, { logger, metrics, auth, bus, store, roles });
  const address = await app.listen({ host: config.host, port: config.port });
  logger.info({ address, roles, bus: bus.kind, store: store.kind }, 'parley started');

  let stopping: Promise<void> | undefined;
  return {
    app,
    config,
    store,
    bus,
    url: address,
    adminKey,
    stop() {
      stopping ??= (async () => {
        // Everything below shares one deadline: a store that stops answering holds requests and
        // batches, and Parley still exits, keeping what it has committed.
        const deadline = Date.now() + STOP_DEADLINE_MS;
        // Stop accepting, finish in-flight requests.
        const answered = await settlesWithin(app.close(), STOP_DEADLINE_MS);
        // Finish the current batches and commit.
        const stopped = (await processors?.stop(Math.max(0, deadline - Date.now()))) ?? true;
        const drained = answered && stopped;
        pipeline.index.close();
        // After a missed deadline a batch may still hold the bus or the store: what is committed
        // is durable already, so closing them is not waited for long.
        const close = (p: Promise<void>) => (drained ? p : settlesWithin(p, 1000));
        await close(bus.close());
        await close(store.close());
        await unlock();
        logger.info('parley stopped');
        logger.flush();
      })();
      return stopping;
    },
  };
}
