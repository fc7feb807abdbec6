import { z } from 'zod';
import { canonicalEventSchema, eventTypeSchema } from '../core/events/schema.ts';
import { type Auth, limitedTo } from '../core/http/auth.ts';
import { type App, errorBody, requireRole } from '../core/http/fastify.ts';
import type { Store } from '../core/store/client.ts';
import { buildEventsQuery, encodeCursor } from './queries/events.ts';
import { exportEventsQuery, pickFormat, streamQuery } from './report-formats.ts';

const time = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));

const eventsQuerySchema = z.object({
  user_id: z.string().min(1).max(128).optional(),
  type: eventTypeSchema.optional(),
  business_id: z.string().min(1).max(128).optional(),
  from: time.optional().describe('ISO-8601 time; events at or after it'),
  to: time.optional().describe('ISO-8601 time; events before it'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(512).optional().describe('The `next` of a previous page'),
});

const eventsPage = z
  .object({ events: z.array(canonicalEventSchema), next: z.string().nullable() })
  .meta({ id: 'EventsPage' });

type Row = {
  event_id: string;
  type: string;
  ms: number | string;
  business_id: string;
  user_id: string;
  thread_id: string;
  channel: string;
  props: string;
};

export async function eventsReadRoute(app: App, deps: { store: Store; auth: Auth }) {
  app.get(
    '/v1/events',
    {
      onRequest: requireRole(deps.auth, 'analyst'),
      schema: {
        summary: 'Read stored events, newest first',
        description:
          'JSON by default; CSV or an Arrow IPC stream (occurred_at as a UTC timestamp, props as JSON text) by the Accept header.',
        tags: ['events'],
        querystring: eventsQuerySchema,
        response: { 200: eventsPage, 400: errorBody, 401: errorBody, 403: errorBody, 406: errorBody },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const q = req.query;
      const p = req.principal!;
      if (q.business_id) deps.auth.checkBusiness(p, q.business_id);
      const businesses = limitedTo(p);
      if (format !== 'json')
        return streamQuery(
          reply,
          deps.store,
          format,
          exportEventsQuery(buildEventsQuery(deps.store.database, { ...q, businesses })),
        );
      const rs = await deps.store.client.query({
        ...buildEventsQuery(deps.store.database, { ...q, businesses }),
        format: 'JSONEachRow',
      });
      const rows = await rs.json<Row>();
      const events = rows.map((r) => ({
        event_id: r.event_id,
        type: r.type as z.infer<typeof eventTypeSchema>,
        occurred_at: new Date(Number(r.ms)).toISOString(),
        business_id: r.business_id,
        user_id: r.user_id,
        thread_id: r.thread_id,
        channel: r.channel as 'sms',
        props: JSON.parse(r.props) as Record<string, unknown>,
      }));
      const last = rows.at(-1);
      return {
        events,
        next: rows.length === q.limit && last ? encodeCursor(Number(last.ms), last.event_id) : null,
      };
    },
  );
}
