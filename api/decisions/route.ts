import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Bus } from '../../core/bus/types.ts';
import { ParleyError } from '../../core/errors.ts';
import { publishCanonical } from '../../core/events/publish.ts';
import { CHANNELS, type CanonicalEvent } from '../../core/events/schema.ts';
import type { Auth } from '../../core/http/auth.ts';
import type { Metrics } from '../../core/metrics.ts';
import { type App, errorBody, limitPerKey, requireRole } from '../../core/http/fastify.ts';
import { type ClickFacts, clickEventId, clickUrl, verifyClick } from './click.ts';
import { servedEvent } from './engine.ts';
import type { DecisionEngine } from './feed.ts';
import { REASONS } from './types.ts';

// POST /v1/decisions (ad server): the sponsored message to insert into one thread now, or 204.
// The decision is counted in memory at once and published as sponsored.served before the answer.
// GET /v1/decisions/:id/click: a signed click URL records sponsored.clicked.

const id = z.string().min(1).max(128);
const decisionInput = z.object({
  user_id: id,
  business_id: id,
  thread_id: id.optional().describe('Default t_<business_id>_<user_id>, as in events'),
  channel: z.enum(CHANNELS),
  context: z.object({ keywords: z.array(z.string().max(512)).max(64).optional() }).optional(),
  explain: z.boolean().optional().describe('Also return every candidate and why it was or was not chosen'),
});
const candidateView = z.object({
  campaign_id: z.string(),
  reason: z.enum(REASONS),
  price_micros: z.number().optional(),
  serve_probability: z.number().optional(),
  value_micros: z.number().optional(),
});
const decisionView = z
  .object({
    decision_id: z.string(),
    campaign_id: z.string(),
    creative: z.unknown(),
    price_micros: z.number(),
    tracking: z.object({ click_url: z.string() }),
    postback_payload: z.string().describe('Put on chat buttons: a tap becomes sponsored.clicked'),
    candidates: z.array(candidateView).optional(),
  })
  .meta({ id: 'Decision' });
const explainedNone = z
  .object({ decision_id: z.null(), candidates: z.array(candidateView) })
  .meta({ id: 'NoDecisionExplained' });
const clickQuery = z.object({
  c: z.string().max(128).optional(),
  u: z.string().max(128).optional(),
  b: z.string().max(128).optional(),
  ch: z.string().max(32).optional(),
  t: z.string().max(128).optional(),
  to: z.string().max(2048).optional(),
  s: z.string().max(64).optional(),
});

function baseUrl(req: FastifyRequest, configured?: string) {
  return configured ?? `${req.protocol}://${req.host}`;
}

const readiness = z
  .object({ ready: z.boolean(), campaigns: z.number(), users: z.number(), behind: z.number() })
  .meta({ id: 'DecisionReadiness' });

export async function decisionsRoute(
  app: App,
  deps: {
    engine: DecisionEngine;
    bus: Bus;
    auth: Auth;
    eventsTopic: string;
    clickKey: Buffer;
    publicUrl?: string;
    metrics?: Metrics;
  },
) {
  const pre = requireRole(deps.auth, 'adserver');

  app.get(
    '/v1/decisions/ready',
    {
      onRequest: requireRole(deps.auth, 'adserver', 'metrics'),
      schema: {
        summary: 'Whether this process’s decision engine has caught up',
        tags: ['decisions'],
        response: { 200: readiness, 503: readiness },
      },
    },
    async (_req, reply) => {
      const s = deps.engine.status();
      return reply.code(s.ready ? 200 : 503).send(s);
    },
  );

  app.post(
    '/v1/decisions',
    {
      onRequest: [pre, limitPerKey],
      // The answer is built here with exactly the documented fields: written as it is, not checked
      // against its schema again on every decision (the schema still documents it).
      serializerCompiler: () => (data) => JSON.stringify(data),
      schema: {
        summary: 'Pick the sponsored message for one thread',
        tags: ['decisions'],
        body: decisionInput,
        response: {
          200: z.union([decisionView, explainedNone]),
          204: z.null(),
          400: errorBody,
          401: errorBody,
          403: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      deps.auth.checkBusiness(req.principal!, req.body.business_id);
      if (!deps.engine.isReady()) throw new ParleyError('PARLEY_ERR_NOT_READY');
      const { decision, candidates } = deps.engine.decide(req.body);
      const explained = req.body.explain ? { candidates } : {};
      if (!decision) {
        deps.metrics?.decisions.labels('none').inc();
        if (req.body.explain) return { decision_id: null, candidates };
        return reply.code(204).send(null);
      }
      await publishCanonical(deps.bus, deps.eventsTopic, [servedEvent(decision)]);
      deps.metrics?.decisions.labels('served').inc();
      const c = decision.campaign;
      const f = decision.served;
      const to = c.source.creative.buttons?.find((b) => b.url)?.url;
      const facts: ClickFacts = {
        decision_id: f.decisionId,
        campaign_id: c.id,
        user_id: f.userId,
        business_id: f.businessId,
        channel: f.channel,
        thread_id: f.threadId,
        ...(to ? { to } : {}),
      };
      return {
        decision_id: f.decisionId,
        campaign_id: c.id,
        creative: c.source.creative,
        price_micros: decision.priceMicros,
        tracking: { click_url: clickUrl(baseUrl(req, deps.publicUrl), deps.clickKey, facts) },
        postback_payload: `parley:d:${f.decisionId}:${c.id}`,
        ...explained,
      };
    },
  );

  app.get(
    '/v1/decisions/:id/click',
    {
      schema: {
        summary: 'Record a click on a served decision (signed URL from the decision)',
        tags: ['decisions'],
        params: z.object({ id }),
        querystring: clickQuery,
        response: { 204: z.null(), 302: z.null(), 400: errorBody, 503: errorBody },
      },
    },
    async (req, reply) => {
      const f = verifyClick(deps.clickKey, req.params.id, req.query);
      if (!f)
        throw new ParleyError(
          'PARLEY_ERR_BAD_REQUEST',
          'This click URL is not one Parley made (bad signature)',
        );
      const event: CanonicalEvent = {
        event_id: clickEventId(f.decision_id),
        type: 'sponsored.clicked',
        occurred_at: new Date().toISOString(),
        business_id: f.business_id,
        user_id: f.user_id,
        thread_id: f.thread_id,
        channel: f.channel as CanonicalEvent['channel'],
        props: { decision_id: f.decision_id, campaign_id: f.campaign_id },
      };
      await publishCanonical(deps.bus, deps.eventsTopic, [event]);
      deps.engine.state.noteClicked(f.decision_id, f.campaign_id);
      if (f.to) return reply.redirect(f.to, 302);
      return reply.code(204).send(null);
    },
  );
}
