import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { Bus } from '../core/bus/types.ts';
import { EventFeed } from '../core/events/feed.ts';
import type { Config } from '../core/config.ts';
import { topicNames } from '../core/config.ts';
import { createAuth, ensureFirstAdminKey } from '../core/http/auth.ts';
import { createKeyStore } from '../core/http/keys.ts';
import type { App } from '../core/http/fastify.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { type Metrics, createMetrics } from '../core/metrics.ts';
import { createBus, lockDataDir, standardTopics } from '../core/runtime.ts';
import { type Store, createStore } from '../core/store/client.ts';
import { migrate } from '../core/store/migrations.ts';
import { createAttributionProcessor } from '../processors/attribution.ts';
import { STOP_DEADLINE_MS, runProcessors, settlesWithin } from '../processors/runner.ts';
import { createSegmentsProcessor } from '../processors/segments.ts';
import { createPipeline } from '../processors/pipeline.ts';
import { createSink } from '../processors/sink.ts';
import { createErasures } from '../core/erasure/registry.ts';
import { resolveHashSecret } from '../ingest/webhooks/secret.ts';
import { ALL_ROLES, type Role, buildApp } from './app.ts';

/** /metrics without a key, on a listener of its own (a port only Prometheus can reach). */
async function serveMetrics(metrics: Metrics, host: string, port: number) {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, host, ok));
  return server;
}

export type Running = {
  app: App;
  config: Config;
  url: string;
  /** Where /metrics is served without a key, with PARLEY_METRICS_PORT. */
  metricsUrl?: string;
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
  // Every role of this process publishes and reads events through one feed, so each event is
  // decoded once here, whoever reads it.
  const feed = new EventFeed(bus);

  let adminKey: string | undefined;
  if (!config.apiKeys?.length) {
    adminKey = await ensureFirstAdminKey(store);
    if (adminKey) {
      out('Parley made an admin API key. It is shown only this once; store it now:');
      out(`  PARLEY_ADMIN_KEY=${adminKey}`);
    }
  }
  const auth = createAuth({ keys: config.apiKeys, store });
  const stored = (await createKeyStore(store).list()).length;
  out(
    `API keys in force: ${config.apiKeys?.length ?? 0} from PARLEY_API_KEYS and ${stored} stored (made at first start or through /v1/keys); both are accepted.`,
  );

  // Erasures are read before anything consumes the bus, so no replay brings an erased person back.
  const hashSecret = await resolveHashSecret(config);
  const erasures = hashSecret
    ? createErasures({
        store,
        logger,
        key: createHmac('sha256', hashSecret).update('parley-erasure-v1').digest(),
      })
    : undefined;
  if (!erasures) logger.warn('PARLEY_HASH_SECRET is not set: erasure of people is off on Kafka');
  await erasures?.start();
  const pipeline = createPipeline({ store, bus, logger, metrics, dlqTopic: topicNames(config).dlq });
  const sink = roles.includes('processors')
    ? createSink({
        store,
        bus,
        logger,
        metrics,
        topic: topicNames(config).events,
        // Deployments that share a Kafka cluster (by topic prefix) must not share groups.
        groupId: `${config.topics.prefix}parley-sink`,
        batchSize: config.sink.batchSize,
        batchWaitMs: config.sink.batchWaitMs,
        pipeline,
      })
    : undefined;
  const segmentsProcessor =
    sink && config.segments.processor
      ? createSegmentsProcessor({
          store,
          bus,
          logger,
          metrics,
          topic: topicNames(config).events,
          membershipTopic: topicNames(config).membership,
          groupId: `${config.topics.prefix}parley-segments`,
          // State rebuilt from the store waits until the sink has stored what was consumed.
          storedOffsets: sink.storedOffsets,
          pipeline,
        })
      : undefined;
  if (segmentsProcessor)
    erasures?.onErased((match) =>
      segmentsProcessor.forget((userId, segment) =>
        match(userId).some((e) => e.businessId === null || !segment || segment.businessId === e.businessId),
      ),
    );

  // On Kafka another process's sink may store the partitions this one's processors read.
  if (roles.includes('processors') && config.kafka) pipeline.index.refreshEvery(5000);
  const processors = sink
    ? await runProcessors(
        feed,
        [
          sink,
          createAttributionProcessor({
            store,
            logger,
            metrics,
            topic: topicNames(config).events,
            groupId: `${config.topics.prefix}parley-attribution`,
            pipeline,
            storedBy: { bus, storedOffsets: sink.storedOffsets },
          }),
          ...(segmentsProcessor ? [segmentsProcessor] : []),
        ],
        logger,
        metrics,
        erasures?.set,
      )
    : undefined;

  const app = await buildApp(config, { logger, metrics, auth, bus, feed, store, roles, erasures });
  const address = await app.listen({ host: config.host, port: config.port });
  const metricsServer =
    config.metricsPort === undefined
      ? undefined
      : await serveMetrics(metrics, config.host, config.metricsPort);
  logger.info({ address, roles, bus: config.kafka ? 'kafka' : 'local', store: store.kind }, 'parley started');

  let stopping: Promise<void> | undefined;
  return {
    app,
    config,
    store,
    bus,
    url: address,
    metricsUrl:
      metricsServer && `http://${config.host}:${(metricsServer.address() as { port: number }).port}`,
    adminKey,
    stop() {
      stopping ??= (async () => {
        // Everything below shares one deadline: a store that stops answering holds requests and
        // batches, and Parley still exits, keeping what it has committed.
        const deadline = Date.now() + STOP_DEADLINE_MS;
        // Stop accepting, finish in-flight requests.
        const answered = await settlesWithin(app.close(), STOP_DEADLINE_MS);
        metricsServer?.close();
        // Finish the current batches and commit.
        const stopped = (await processors?.stop(Math.max(0, deadline - Date.now()))) ?? true;
        const drained = answered && stopped;
        erasures?.stop();
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
