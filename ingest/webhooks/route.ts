// GET/POST /v1/webhooks/{messenger,whatsapp,instagram}: Meta's subscription handshake and signed
// deliveries in the platforms' own formats, turned into canonical events on the bus.
// Handshake: https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { EventFeed } from '../../core/events/feed.ts';
import { ParleyError } from '../../core/errors.ts';
import { type CanonicalEvent, normalizeEvent } from '../../core/events/index.ts';
import { safeEqual } from '../../core/http/auth.ts';
import { type App, decodeBody, errorBody, parseJson } from '../../core/http/fastify.ts';
import type { Logger } from '../../core/log.ts';
import type { Metrics } from '../../core/metrics.ts';
import { publishEvents, scrub } from '../publish.ts';
import { type AdapterContext, type AdaptResult, DeliveryError, type Platform } from './common.ts';
import { DELIVERY_BODIES } from './examples.ts';
import { adaptInstagram } from './instagram.ts';
import { adaptMessenger } from './messenger.ts';
import { SIGNATURE_HEADER, verifySignature } from './signature.ts';
import { adaptWhatsApp } from './whatsapp.ts';

export type WebhookDeps = {
  feed: EventFeed;
  metrics: Metrics;
  logger?: Logger;
  topics: { events: string; dlq: string };
  normalize: { maxFutureMs: number; keywords: readonly string[] };
  meta: { appSecret?: string; verifyToken?: string; businessMap: Readonly<Record<string, string>> };
  /** Keys WhatsApp user ids; without it WhatsApp deliveries are refused (see secret.ts). */
  hashSecret?: string;
  /** The key and hold of offer tokens: echoes and statuses carrying one record its impression. */
  offers?: { key: Buffer; holdMs: number };
  bodyLimit?: number;
};

export const PLATFORMS: Platform[] = ['messenger', 'whatsapp', 'instagram'];

const ADAPTERS: Record<Platform, (body: unknown, ctx: AdapterContext) => AdaptResult> = {
  messenger: adaptMessenger,
  whatsapp: adaptWhatsApp,
  instagram: adaptInstagram,
};

const handshake = z.object({
  'hub.mode': z.string().optional(),
  'hub.verify_token': z.string().optional(),
  'hub.challenge': z.string().max(1024).optional(),
});

const deliveryResult = z
  .object({
    accepted: z.number().int().describe('Canonical events durably on the bus'),
    rejected: z.number().int().describe('Events that failed validation (kept on the dead-letter topic)'),
    ignored: z
      .number()
      .int()
      .describe('Items acknowledged but not used (reactions, failed statuses, unknown fields…)'),
  })
  .meta({
    id: 'WebhookResult',
    description: 'The delivery is durable on the bus: what was accepted, refused and ignored',
  });

export type DeliveryOutcome = {
  events: CanonicalEvent[];
  rejected: { error: string; input: unknown }[];
  ignored: AdaptResult['ignored'];
};

/** Adapts a parsed delivery and normalises its events (privacy reduction included). */
export function processDelivery(
  platform: Platform,
  body: unknown,
  ctx: AdapterContext,
  normalize: WebhookDeps['normalize'],
  now = Date.now(),
): DeliveryOutcome {
  const { events, ignored } = ADAPTERS[platform](body, ctx);
  const out: DeliveryOutcome = { events: [], rejected: [], ignored };
  for (const e of events) {
    const r = normalizeEvent(e, { now, ...normalize });
    if (r.ok) out.events.push(r.value);
    else out.rejected.push({ error: r.error, input: scrub(e) });
  }
  return out;
}

const notConfigured = (what: string) =>
  new ParleyError(
    'PARLEY_ERR_WEBHOOK_NOT_CONFIGURED',
    `Platform webhooks are not configured: ${what}. Unsigned deliveries are never accepted.`,
  );

export async function webhooksRoute(app: App, deps: WebhookDeps) {
  const ctx: AdapterContext = {
    businessMap: deps.meta.businessMap,
    hashSecret: deps.hashSecret,
    offers: deps.offers,
  };
  const log = deps.logger?.child({ component: 'webhooks' });
  if (!deps.meta.appSecret)
    log?.info('PARLEY_META_APP_SECRET is not set: platform webhook deliveries will be refused');
  else if (!deps.hashSecret)
    log?.warn('PARLEY_HASH_SECRET is not set: WhatsApp webhook deliveries will be refused');
  // Signatures cover the exact bytes received, so these routes keep the body as a Buffer.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.bodyLimit }, (_req, body, done) =>
      done(null, body),
    );
    const api = scope as unknown as App;
    for (const platform of PLATFORMS) {
      const url = `/v1/webhooks/${platform}`;
      api.get(
        url,
        {
          schema: {
            summary: `${platform} webhook subscription handshake`,
            description:
              'Answers hub.challenge (text/plain) when hub.mode is "subscribe" and hub.verify_token equals PARLEY_META_VERIFY_TOKEN; 403 otherwise.',
            tags: ['webhooks'],
            security: [],
            querystring: handshake,
            produces: ['text/plain'],
            response: { 200: z.string().describe('hub.challenge, as text'), 403: errorBody, 503: errorBody },
          },
        },
        async (req, reply) => {
          const token = deps.meta.verifyToken;
          if (!token) throw notConfigured('set PARLEY_META_VERIFY_TOKEN');
          const q = req.query;
          if (q['hub.mode'] !== 'subscribe' || !safeEqual(q['hub.verify_token'] ?? '', token)) {
            throw new ParleyError(
              'PARLEY_ERR_FORBIDDEN',
              'hub.mode must be "subscribe" and hub.verify_token must equal the configured verify token',
            );
          }
          // The challenge goes back verbatim as text, outside the JSON response schemas.
          return (reply as unknown as FastifyReply)
            .code(200)
            .type('text/plain; charset=utf-8')
            .send(q['hub.challenge'] ?? '');
        },
      );
      api.post(
        url,
        {
          schema: {
            summary: `${platform} webhook deliveries`,
            description:
              "The platform's own delivery format, signed with X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the app secret). 401 unsigned, 403 forged; nothing is stored for either. 200 once the canonical events are durable on the bus; 503 if they are not.",
            tags: ['webhooks'],
            security: [],
            // Shown in the OpenAPI document only: the signature covers the raw bytes, read as they are.
            documentedBody: DELIVERY_BODIES[platform],
            response: {
              200: deliveryResult,
              400: errorBody,
              401: errorBody,
              403: errorBody,
              413: errorBody,
              503: errorBody,
            },
          },
        },
        async (req, reply) => {
          const secret = deps.meta.appSecret;
          if (!secret) throw notConfigured('set PARLEY_META_APP_SECRET to the Meta app secret');
          const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const check = verifySignature(secret, raw, req.headers[SIGNATURE_HEADER]);
          if (check === 'missing')
            throw new ParleyError(
              'PARLEY_ERR_UNAUTHORIZED',
              'Deliveries must carry an X-Hub-Signature-256 header signed with the app secret',
            );
          if (check === 'mismatch')
            throw new ParleyError(
              'PARLEY_ERR_FORBIDDEN',
              'X-Hub-Signature-256 does not match the body for the configured app secret',
            );
          if (platform === 'whatsapp' && !ctx.hashSecret) {
            throw notConfigured(
              'WhatsApp user ids are keyed hashes; set PARLEY_HASH_SECRET (shared by every ingest process)',
            );
          }
          const body = parseJson(decodeBody(raw));
          let outcome: DeliveryOutcome;
          try {
            outcome = processDelivery(platform, body, ctx, deps.normalize);
          } catch (err) {
            if (err instanceof DeliveryError)
              throw new ParleyError('PARLEY_ERR_BAD_REQUEST', `Not a ${platform} delivery: ${err.message}`);
            throw err;
          }
          const source = `webhook_${platform}`;
          const dead = outcome.rejected.map((r, index) => ({
            source,
            index,
            error: r.error,
            input: r.input,
          }));
          try {
            await publishEvents(deps.feed, deps.topics, outcome.events, dead);
          } catch (err) {
            deps.metrics.ingestUnavailable.inc();
            throw err;
          }
          deps.metrics.eventsAccepted.labels(source).inc(outcome.events.length);
          if (dead.length) deps.metrics.eventsRejected.labels(source).inc(dead.length);
          for (const i of outcome.ignored)
            deps.metrics.webhookItemsIgnored.labels(platform, i.kind.slice(0, 64)).inc();
          if (dead.length)
            (log ?? req.log).warn(
              { platform, rejected: dead.map((d) => d.error) },
              'webhook events rejected',
            );
          return reply.code(200).send({
            accepted: outcome.events.length,
            rejected: dead.length,
            ignored: outcome.ignored.length,
          });
        },
      );
    }
  });
}
