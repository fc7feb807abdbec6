import { z } from 'zod';
import type { EventFeed } from '../core/events/feed.ts';
import { ParleyError } from '../core/errors.ts';
import { documentedEventSchema } from '../core/events/document.ts';
import { type CanonicalEvent, normalizeEvent } from '../core/events/index.ts';
import { type Auth, canSee } from '../core/http/auth.ts';
import {
  type App,
  errorBody,
  limitPerKey,
  parseJson,
  principalOf,
  requireRole,
} from '../core/http/fastify.ts';
import { MEDIA } from '../core/http/openapi.ts';
import type { Metrics } from '../core/metrics.ts';
import { type Rejection, publishEvents, rawLineSummary, scrub } from './publish.ts';

export const MAX_EVENTS_PER_REQUEST = 10_000;

const EXAMPLE_EVENT = {
  event_id: '7f9c2b0e-5d1c-4f3e-9a39-0a5b8c6d2e11',
  type: 'message.received',
  occurred_at: '2026-03-04T10:15:30.123Z',
  business_id: 'biz_barber_42',
  user_id: 'u_8d1f',
  channel: 'whatsapp',
  props: { text: 'Can I book a haircut on Saturday?' },
};

export type IngestDeps = {
  feed: EventFeed;
  auth: Auth;
  metrics: Metrics;
  topics: { events: string; dlq: string };
  normalize: { maxFutureMs: number; keywords: readonly string[] };
  /** Events waiting for the bus, beyond which requests get 503 at once instead of queueing. */
  maxPendingEvents?: number;
};

const ingestResponse = z
  .object({
    accepted: z.number().int().describe('Events durably accepted'),
    rejected: z
      .array(z.object({ index: z.number().int(), error: z.string() }))
      .describe('Events refused, by position in the request'),
  })
  .meta({
    id: 'IngestResult',
    description:
      'Accepted events are durable on the bus; each refused one is listed with its index and reason',
  });

export async function eventsRoute(app: App, deps: IngestDeps) {
  // Back-pressure: when the bus is slow, events waiting for it are bounded, not memory.
  let pending = 0;
  const maxPending = deps.maxPendingEvents ?? Number.POSITIVE_INFINITY;
  app.post(
    '/v1/events',
    {
      // Each event is checked on its own (normalizeEvent): one bad event is rejected, not the request.
      config: { itemsCheckedAlone: true },
      onRequest: [requireRole(deps.auth, 'ingest'), limitPerKey],
      schema: {
        summary: 'Ingest canonical events',
        description:
          'A JSON array or NDJSON (application/x-ndjson) of canonical events. Each invalid event is rejected with its index and reason (and kept, without personal data, on the dead-letter topic); valid events in the same request are accepted. 202 is answered only once the events are durable on the bus; 503 means nothing was acknowledged.',
        tags: ['ingest'],
        // Read as it comes, each event checked on its own (splitBody, normalizeEvent).
        body: z.unknown(),
        documentedBody: {
          [MEDIA.json]: z
            .array(documentedEventSchema)
            .min(1)
            .max(MAX_EVENTS_PER_REQUEST)
            .describe(`A JSON array of 1 to ${MAX_EVENTS_PER_REQUEST} canonical events`)
            .meta({ examples: [[EXAMPLE_EVENT]] }),
          [MEDIA.ndjson]: z
            .string()
            .regex(/\S/)
            .describe(
              `NDJSON: one canonical event per line (1 to ${MAX_EVENTS_PER_REQUEST}, blank lines skipped); an event's index is its line's, from 0`,
            )
            .meta({ examples: [`${JSON.stringify(EXAMPLE_EVENT)}\n`] }),
        },
        response: {
          202: ingestResponse,
          400: errorBody,
          401: errorBody,
          403: errorBody,
          413: errorBody,
          415: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      const items = splitBody(req.body);
      const now = Date.now();
      const accepted: CanonicalEvent[] = [];
      const rejected: Rejection[] = [];
      const dead: { source: string; index: number; error: string; input: unknown }[] = [];
      const p = principalOf(req);
      for (const item of items) {
        const { index } = item;
        let error: string;
        if (item.error !== undefined) {
          error = item.error;
        } else {
          const r = normalizeEvent(item.value, { now, ...deps.normalize });
          if (r.ok) {
            if (canSee(p, r.value.business_id)) {
              accepted.push(r.value);
              continue;
            }
            error = `business_id: this key may not send events for ${r.value.business_id}`;
          } else error = r.error;
        }
        rejected.push({ index, error });
        dead.push({
          source: 'api',
          index,
          error,
          input: item.error !== undefined ? rawLineSummary(item.raw ?? '') : scrub(item.value),
        });
      }
      const n = accepted.length + dead.length;
      if (pending > 0 && pending + n > maxPending) {
        deps.metrics.ingestUnavailable.inc();
        throw new ParleyError(
          'PARLEY_ERR_BUS_UNAVAILABLE',
          `The bus is behind (${pending} events waiting to be made durable); nothing was acknowledged, retry`,
        );
      }
      pending += n;
      try {
        await publishEvents(deps.feed, deps.topics, accepted, dead);
      } catch (err) {
        deps.metrics.ingestUnavailable.inc();
        throw err;
      } finally {
        pending -= n;
      }
      deps.metrics.eventsAccepted.labels('api').inc(accepted.length);
      deps.metrics.eventsRejected.labels('api').inc(rejected.length);
      return reply.code(202).send({ accepted: accepted.length, rejected });
    },
  );
}

type Item = { index: number; value?: unknown; error?: string; raw?: string };

function splitBody(body: unknown): Item[] {
  let items: Item[];
  if (typeof body === 'string') {
    // NDJSON: one event per line, its index the line's (from 0); a malformed line is rejected on
    // its own, a blank one skipped.
    items = [];
    body.split('\n').forEach((raw, index) => {
      if (raw.trim() === '') return;
      try {
        items.push({ index, value: parseJson(raw) });
      } catch (err) {
        items.push({
          index,
          error: `line is not valid JSON: ${(err as Error).message.replace(/^The body is not valid JSON: /, '')}`,
          raw,
        });
      }
    });
  } else if (Array.isArray(body)) {
    items = body.map((value, index) => ({ index, value }));
  } else if (Buffer.isBuffer(body) || body === undefined) {
    throw new ParleyError(
      'PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE',
      'Send events as application/json (an array) or application/x-ndjson',
    );
  } else {
    throw new ParleyError(
      'PARLEY_ERR_BAD_REQUEST',
      'The body must be a JSON array of events (or NDJSON, one event per line)',
    );
  }
  if (items.length === 0) throw new ParleyError('PARLEY_ERR_BAD_REQUEST', 'The body holds no events');
  if (items.length > MAX_EVENTS_PER_REQUEST) {
    throw new ParleyError(
      'PARLEY_ERR_PAYLOAD_TOO_LARGE',
      `At most ${MAX_EVENTS_PER_REQUEST} events per request; this one has ${items.length}`,
    );
  }
  return items;
}
