import { z } from 'zod';
import { type Auth, readScope } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import type { Metrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';
import { buildEventsPerMinuteQuery, buildTopBusinessesQuery } from './queries/stats.ts';

// GET /v1/stats/overview: what the dashboards' overview shows. Process-wide figures (accepted and
// rejected counts, consumer lag) describe every business, so keys limited to businesses get null.

const overviewQuery = z
  .object({
    minutes: z.coerce.number().int().min(1).max(1440).default(180).describe('How far back from now'),
    business_id: z.string().min(1).max(128).optional(),
  })
  .strict();

const overview = z
  .object({
    from: z.string(),
    to: z.string(),
    per_minute: z.array(
      z.object({ minute: z.string(), type: z.string(), channel: z.string(), events: z.number() }),
    ),
    businesses: z.array(z.object({ business_id: z.string(), events: z.number(), users: z.number() })),
    ingest: z
      .object({ accepted: z.number(), rejected: z.number() })
      .nullable()
      .describe('Events this process accepted and rejected since it started'),
    lag: z
      .array(z.object({ group: z.string(), topic: z.string(), messages: z.number() }))
      .nullable()
      .describe('Messages not yet committed, per consumer group of this process'),
  })
  .meta({
    id: 'Overview',
    description:
      'Stored events per minute by type and channel, the most active businesses, ingest counts and lag',
  });

const sum = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await c.get()).values.reduce((a, v) => a + v.value, 0);

export async function statsRoute(app: App, deps: { store: Store; auth: Auth; metrics: Metrics }) {
  app.get(
    '/v1/stats/overview',
    {
      preHandler: requireRole(deps.auth, 'analyst'),
      schema: {
        summary: 'Events per minute by type and channel, the most active businesses, ingest and lag',
        tags: ['stats'],
        querystring: overviewQuery,
        response: {
          200: overview.describe('Events per minute, rejections, lag and the busiest businesses'),
          400: errorBody,
          401: errorBody,
          403: errorBody,
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const { minutes, business_id } = req.query;
      const limited = readScope(p, business_id);
      const to = Math.ceil(Date.now() / 60_000) * 60_000;
      const q = { from: to - minutes * 60_000, to, business_id, businesses: limited };
      type Minute = { minute: string; type: string; channel: string; events: string };
      type Biz = { business_id: string; events: string; users: string };
      const [perMinute, businesses] = await Promise.all([
        deps.store.rows<Minute>(buildEventsPerMinuteQuery(deps.store.database, q)),
        deps.store.rows<Biz>(buildTopBusinessesQuery(deps.store.database, q, 10)),
      ]);
      const lag = (await deps.metrics.lag.get()).values.map((v) => ({
        group: String(v.labels.group),
        topic: String(v.labels.topic),
        messages: v.value,
      }));
      return {
        from: new Date(q.from).toISOString(),
        to: new Date(q.to).toISOString(),
        per_minute: perMinute.map((r) => ({
          minute: new Date(Number(r.minute)).toISOString(),
          type: r.type,
          channel: r.channel,
          events: Number(r.events),
        })),
        businesses: businesses.map((r) => ({
          business_id: r.business_id,
          events: Number(r.events),
          users: Number(r.users),
        })),
        ingest: limited
          ? null
          : {
              accepted: await sum(deps.metrics.eventsAccepted),
              rejected: await sum(deps.metrics.eventsRejected),
            },
        lag: limited ? null : lag,
      };
    },
  );
}
