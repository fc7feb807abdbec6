import { z } from 'zod';
import { canonicalEventSchema, eventTypeSchema } from '../core/events/schema.ts';
import { type Auth, readScope } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import { TABLE_FORMATS } from '../core/http/openapi.ts';
import { pageCursor, rangeFrom, rangeTo, strictObject } from '../core/input.ts';
import type { Store } from '../core/store/client.ts';
import { buildEventsQuery, encodeCursor } from './queries/events.ts';
import { type Column, pickFormat, sendTable } from './report-formats.ts';

const eventsQuerySchema = strictObject({
  user_id: z.string().min(1).max(128).optional(),
  type: eventTypeSchema.optional(),
  business_id: z.string().min(1).max(128).optional(),
  from: rangeFrom
    .optional()
    .describe('ISO-8601 time with a zone, or a date (UTC midnight); events at or after it'),
  to: rangeTo.optional().describe('ISO-8601 time with a zone, or a date (UTC midnight); events before it'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  // A page of events after the newest event at 2026-11-20T00:00:00Z (any position is a cursor).
  cursor: pageCursor.meta({ examples: [encodeCursor(Date.UTC(2026, 10, 20), 'evt_1')] }).optional(),
});

const eventsPage = z.object({ events: z.array(canonicalEventSchema), next: z.string().nullable() }).meta({
  id: 'EventsPage',
  description: 'One page of stored events, newest first, and the cursor of the next page',
});

/** CSV and Arrow pages carry the next page's cursor here (JSON in its body's `next`). */
export const NEXT_CURSOR_HEADER = 'parley-next-cursor';

/** The export table: occurred_at as a UTC time, props as JSON text. */
const EXPORT_COLUMNS: Column[] = [
  { name: 'event_id', type: 'string' },
  { name: 'type', type: 'string' },
  { name: 'occurred_at', type: 'time' },
  { name: 'business_id', type: 'string' },
  { name: 'user_id', type: 'string' },
  { name: 'thread_id', type: 'string' },
  { name: 'channel', type: 'string' },
  { name: 'props', type: 'string' },
];

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
          'JSON by default; CSV or an Arrow IPC stream (occurred_at as a UTC time, props as JSON text) by the Accept header. Ordered by occurred_at, then event_id, newest first. The next page is asked for with `cursor`: the JSON body’s `next`, or the `Parley-Next-Cursor` header of a CSV or Arrow page (absent on the last page).',
        produces: TABLE_FORMATS,
        tags: ['events'],
        querystring: eventsQuerySchema,
        response: { 200: eventsPage, 400: errorBody, 401: errorBody, 403: errorBody, 406: errorBody },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const q = req.query;
      const p = principalOf(req);
      const businesses = readScope(p, q.business_id);
      // One row past the page says whether there is a next page.
      const rows = await deps.store.rows<Row>(
        buildEventsQuery(deps.store.database, { ...q, limit: q.limit + 1, businesses }),
      );
      const page = rows.slice(0, q.limit);
      const last = page.at(-1);
      const next = rows.length > q.limit && last ? encodeCursor(Number(last.ms), last.event_id) : null;
      if (format !== 'json') {
        if (next) reply.header(NEXT_CURSOR_HEADER, next);
        return sendTable(
          reply,
          format,
          EXPORT_COLUMNS,
          page.map((r) => ({ ...r, occurred_at: Number(r.ms) })),
        );
      }
      const events = page.map((r) => ({
        event_id: r.event_id,
        type: r.type as z.infer<typeof eventTypeSchema>,
        occurred_at: new Date(Number(r.ms)).toISOString(),
        business_id: r.business_id,
        user_id: r.user_id,
        thread_id: r.thread_id,
        channel: r.channel as 'sms',
        props: JSON.parse(r.props) as Record<string, unknown>,
      }));
      return { events, next };
    },
  );
}
