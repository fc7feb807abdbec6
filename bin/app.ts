import { z } from 'zod';
import type { Bus } from '../core/bus/types.ts';
import type { EventFeed } from '../core/events/feed.ts';
import { type Config, topicNames } from '../core/config.ts';
import type { Auth } from '../core/http/auth.ts';
import { type App, createHttp, requireRole } from '../core/http/fastify.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { campaignsRoute } from '../api/campaigns-route.ts';
import { dashboardsRoute } from '../api/dashboards-route.ts';
import { segmentHistoryRoute } from '../api/segment-history-route.ts';
import { statsRoute } from '../api/stats-route.ts';
import { createSessions, sessionRoutes } from '../core/http/session.ts';
import { createDecisionEngine } from '../api/decisions/feed.ts';
import { impressionsRoute } from '../api/decisions/impressions-route.ts';
import { createEventLog, createOfferLog } from '../api/decisions/offer-log.ts';
import { decisionsRoute } from '../api/decisions/route.ts';
import { eventsReadRoute } from '../api/events-route.ts';
import { keysRoute } from '../api/keys-route.ts';
import { usersRoute } from '../api/users-route.ts';
import type { Erasures } from '../core/erasure/registry.ts';
import { createAuditLog } from '../core/audit.ts';
import { createKeyStore } from '../core/http/keys.ts';
import { reportsRoute } from '../api/reports-route.ts';
import { segmentsRoute } from '../api/segments-route.ts';
import { eventsRoute } from '../ingest/events-route.ts';
import { webhooksRoute } from '../ingest/webhooks/route.ts';
import { resolveHashSecret } from '../ingest/webhooks/secret.ts';
import { resolveClickKey } from '../core/offers/click.ts';

export type Role = 'ingest' | 'processors' | 'api';

const health = z
  .object({
    status: z.enum(['ok', 'degraded']),
    roles: z.array(z.string()),
    bus: z.string(),
    store: z.string(),
    checks: z.object({ store: z.boolean() }),
  })
  .meta({ id: 'Health' });
export const ALL_ROLES: Role[] = ['ingest', 'processors', 'api'];

/** The checkout's (or image's) root: the nearest folder above this file holding package.json. */
function packageRoot(from: string): string {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return from;
  }
}
/** The built dashboards, found the same way from sources (bin/) and from compiled code (dist/bin/). */
export const DASHBOARDS_DIST = join(
  packageRoot(fileURLToPath(new URL('.', import.meta.url))),
  'dashboards',
  'dist',
);

export type AppDeps = {
  logger: Logger;
  metrics: Metrics;
  auth: Auth;
  bus: Bus;
  /** The process's one event feed, over `bus`. */
  feed: EventFeed;
  store: Store;
  roles: Role[];
  /** Erased people (absent on Kafka without PARLEY_HASH_SECRET: erasure is then refused). */
  erasures?: Erasures;
};

/** How long every process is given to read a new erasure before the tables are swept again. */
export const ERASURE_SETTLE_MS = 3000;

/** The HTTP app for the given roles. It does not listen; server.ts does. */
export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  // One key signs offer tokens and click URLs, and every role that verifies them shares it.
  const offerKey = await resolveClickKey(config, deps.logger);
  const app = await createHttp({
    logger: deps.logger,
    bodyLimit: config.ingest.bodyLimitBytes,
    metrics: deps.metrics,
    rateLimit: config.rateLimit,
    requestTimeoutMs: config.httpRequestTimeoutMs,
  });

  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness and dependencies',
        tags: ['ops'],
        response: {
          200: health.describe('Serving, store reachable'),
          503: health.describe('Store unreachable'),
        },
      },
    },
    async (_req, reply) => {
      const store = await deps.store.client.ping().then(
        (r) => r.success,
        () => false,
      );
      return reply.code(store ? 200 : 503).send({
        status: store ? 'ok' : 'degraded',
        roles: deps.roles,
        bus: config.kafka ? 'kafka' : 'local',
        store: deps.store.kind,
        checks: { store },
      });
    },
  );
  // With a metrics port, /metrics is served there (server.ts) and not here.
  if (config.metricsPort === undefined) {
    app.get(
      '/metrics',
      {
        onRequest: requireRole(deps.auth, 'metrics'),
        // Prometheus text, not part of the JSON API's document.
        schema: { summary: 'Prometheus metrics (a key with role metrics or admin)', hide: true },
      },
      async (_req, reply) => {
        return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
      },
    );
  }

  if (deps.roles.includes('ingest')) {
    await eventsRoute(app, {
      feed: deps.feed,
      auth: deps.auth,
      metrics: deps.metrics,
      topics: topicNames(config),
      normalize: { maxFutureMs: config.ingest.maxFutureMs, keywords: config.ingest.keywords },
      maxPendingEvents: config.ingest.maxPendingEvents,
    });
    await webhooksRoute(app, {
      feed: deps.feed,
      metrics: deps.metrics,
      logger: deps.logger,
      topics: topicNames(config),
      normalize: { maxFutureMs: config.ingest.maxFutureMs, keywords: config.ingest.keywords },
      meta: config.meta,
      hashSecret: await resolveHashSecret(config),
      offers: { key: offerKey, holdMs: config.decisions.holdMs },
      bodyLimit: config.ingest.bodyLimitBytes,
    });
  }
  if (deps.roles.includes('api')) {
    await sessionRoutes(app, { auth: deps.auth, sessions: createSessions() });
    await dashboardsRoute(app, { dist: DASHBOARDS_DIST });
    await statsRoute(app, { store: deps.store, auth: deps.auth, metrics: deps.metrics });
    await eventsReadRoute(app, { store: deps.store, auth: deps.auth });
    const audit = createAuditLog(deps.store);
    await keysRoute(app, {
      auth: deps.auth,
      keys: createKeyStore(deps.store),
      audit,
      configKeys: config.apiKeys ?? [],
    });
    await usersRoute(app, {
      store: deps.store,
      auth: deps.auth,
      erasures: deps.erasures,
      audit,
      logger: deps.logger,
      settleMs: ERASURE_SETTLE_MS,
    });
    // Attribution at the default windows reads the credits the attribution processor stores.
    await reportsRoute(app, { store: deps.store, auth: deps.auth, storedCredits: true });
    await segmentsRoute(app, {
      store: deps.store,
      bus: deps.bus,
      auth: deps.auth,
      membershipTopic: topicNames(config).membership,
      minAudienceSize: config.segments.minAudienceSize,
    });
    await segmentHistoryRoute(app, { store: deps.store, auth: deps.auth });
    // The decision engine: in memory, fed by the bus, stopped with the app.
    const engine = await createDecisionEngine({
      store: deps.store,
      feed: deps.feed,
      logger: deps.logger,
      topics: topicNames(config),
      decisions: config.decisions,
      holdoutKey: config.holdoutKey,
      erasures: deps.erasures,
    });
    const offerLog = createOfferLog({
      bus: deps.bus,
      topic: topicNames(config).offers,
      metrics: deps.metrics,
      logger: deps.logger,
    });
    const withheldLog = createEventLog({
      feed: deps.feed,
      topic: topicNames(config).events,
      metrics: deps.metrics,
      logger: deps.logger,
    });
    app.addHook('onClose', async () => {
      await engine.stop();
      await Promise.all([offerLog.stop(), withheldLog.stop()]);
    });
    deps.metrics.decisionsReady.set(0);
    engine.ready.then(() => deps.metrics.decisionsReady.set(1));
    await campaignsRoute(app, {
      store: deps.store,
      auth: deps.auth,
      minAudienceSize: config.segments.minAudienceSize,
      onChange: () => engine.reload().catch((err) => deps.logger.warn({ err }, 'campaign reload failed')),
    });
    await decisionsRoute(app, {
      engine,
      feed: deps.feed,
      auth: deps.auth,
      eventsTopic: topicNames(config).events,
      clickKey: offerKey,
      offerLog,
      withheldLog,
      publicUrl: config.decisions.publicUrl,
      metrics: deps.metrics,
    });
    await impressionsRoute(app, {
      feed: deps.feed,
      auth: deps.auth,
      eventsTopic: topicNames(config).events,
      clickKey: offerKey,
      holdMs: config.decisions.holdMs,
      metrics: deps.metrics,
    });
  }
  return app;
}
