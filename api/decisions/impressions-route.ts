import { z } from 'zod';
import type { EventFeed } from '../../core/events/feed.ts';
import { ParleyError } from '../../core/errors.ts';
import type { Auth, Principal } from '../../core/http/auth.ts';
import { type App, errorBody, requireRole } from '../../core/http/fastify.ts';
import type { Metrics } from '../../core/metrics.ts';
import { type OfferFacts, impressionEvent, offerTokenSchema, verifyOffer } from '../../core/offers/token.ts';

// Confirmations of delivery for channels without a delivery webhook (SMS, web chat, an ad
// server's own renderer): GET of the impression URL, or POST /v1/impressions with a batch of
// tokens. Each valid token becomes its offer's one sponsored.served, acknowledged once durable.

const TOKEN_ERRORS = {
  malformed: 'not an offer token',
  bad_signature: 'not a token Parley made (bad signature)',
  expired: 'the offer is no longer held (older than PARLEY_DECISION_HOLD_SECONDS); it cannot be confirmed',
  forbidden: 'this key is limited to other businesses',
} as const;
type TokenError = keyof typeof TOKEN_ERRORS;

const impressionsInput = z
  .object({
    tokens: z
      .array(offerTokenSchema)
      .min(1)
      .max(1000)
      .describe('delivery_tag values of delivered offers, at most 1000'),
  })
  .strict()
  .meta({
    example: {
      tokens: ['o1.d_4f1c9a2b7e1a.cmp_spring.biz_barber_42.u_8d1f.3..3uw.mhx9c3k0.Zk3v9Qp0aT1sYw8bLr2nXc'],
    },
  });
const impressionsResult = z
  .object({
    accepted: z
      .number()
      .int()
      .describe('Tokens whose impression is durably on the bus (a repeat counts once)'),
    rejected: z.array(
      z.object({
        index: z.number().int(),
        error: z.enum(Object.keys(TOKEN_ERRORS) as [TokenError, ...TokenError[]]),
        message: z.string(),
      }),
    ),
  })
  .meta({
    description: 'The valid tokens’ impressions are durable on the bus; the others are listed with why',
    example: { accepted: 99, rejected: [{ index: 7, error: 'expired', message: TOKEN_ERRORS.expired }] },
  });

function mayConfirm(auth: Auth, p: Principal | undefined, businessId: string) {
  try {
    if (p) auth.checkBusiness(p, businessId);
    return true;
  } catch {
    return false;
  }
}

export async function impressionsRoute(
  app: App,
  deps: {
    feed: EventFeed;
    auth: Auth;
    eventsTopic: string;
    clickKey: Buffer;
    holdMs: number;
    metrics?: Metrics;
  },
) {
  const count = (path: string, result: string, n = 1) =>
    deps.metrics?.impressions.labels(path, result).inc(n);

  app.post(
    '/v1/impressions',
    {
      preHandler: requireRole(deps.auth, 'adserver'),
      schema: {
        summary: 'Confirm delivered offers (batch of delivery tags)',
        description:
          'For channels without a delivery webhook. Each valid token records its offer’s impression (sponsored.served, one per decision however often confirmed). 202 once they are durable on the bus; invalid tokens are listed and nothing is recorded for them; 503 and nothing acknowledged if the bus cannot take them.',
        tags: ['decisions'],
        body: impressionsInput,
        response: {
          202: impressionsResult.describe(
            'The valid tokens’ impressions are durable on the bus; the others are listed with why',
          ),
          400: errorBody,
          401: errorBody,
          403: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      const now = Date.now();
      const valid = new Map<string, OfferFacts>();
      const rejected: z.infer<typeof impressionsResult>['rejected'] = [];
      req.body.tokens.forEach((t, index) => {
        const check = verifyOffer(deps.clickKey, t, now, deps.holdMs);
        if (!check.ok) rejected.push({ index, error: check.error, message: TOKEN_ERRORS[check.error] });
        else if (!mayConfirm(deps.auth, req.principal, check.facts.business_id))
          rejected.push({ index, error: 'forbidden', message: TOKEN_ERRORS.forbidden });
        else valid.set(check.facts.decision_id, check.facts);
      });
      await deps.feed.publish(deps.eventsTopic, [...valid.values()].map(impressionEvent));
      count('batch', 'recorded', req.body.tokens.length - rejected.length);
      for (const r of rejected) count('batch', r.error);
      return reply.code(202).send({ accepted: req.body.tokens.length - rejected.length, rejected });
    },
  );

  app.get(
    '/v1/impressions/:token',
    {
      schema: {
        summary: 'Record an impression (the impression URL of an offer)',
        description:
          'Needs no key: the token is signed. 204 once the impression is durable on the bus; 400 for a forged, altered or expired token.',
        tags: ['decisions'],
        security: [],
        params: z.object({ token: offerTokenSchema }),
        response: {
          204: z.null().describe('The impression is durable on the bus (a repeat is the same impression)'),
          400: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      const check = verifyOffer(deps.clickKey, req.params.token, Date.now(), deps.holdMs);
      if (!check.ok) {
        count('url', check.error);
        throw new ParleyError(
          'PARLEY_ERR_BAD_REQUEST',
          `This impression URL is refused: ${TOKEN_ERRORS[check.error]}`,
          {
            details: { reason: check.error },
          },
        );
      }
      await deps.feed.publish(deps.eventsTopic, [impressionEvent(check.facts)]);
      count('url', 'recorded');
      return reply.code(204).send(null);
    },
  );
}
