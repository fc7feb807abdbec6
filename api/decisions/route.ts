import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { EventFeed } from '../../core/events/feed.ts';
import { ParleyError } from '../../core/errors.ts';
import { memoized } from '../../core/maps.ts';
import { CHANNELS, type CanonicalEvent, type Channel } from '../../core/events/schema.ts';
import { type Auth, canSee } from '../../core/http/auth.ts';
import { strictObject } from '../../core/input.ts';
import type { Answer } from '../../core/http/answer-path.ts';
import { type App, errorBody, limitPerKey, principalOf, requireRole } from '../../core/http/fastify.ts';
import type { Metrics } from '../../core/metrics.ts';
import { clickEventId, verifyClick } from '../../core/offers/click.ts';
import {
  derivedEventId,
  type OfferFacts,
  offerTokenSchema,
  signOffer,
  verifyOffer,
} from '../../core/offers/token.ts';
import type { Withheld } from './engine.ts';
import type { DecisionEngine } from './feed.ts';
import { offerFacts } from './state.ts';
import type { BatchLog, OfferLog } from './offer-log.ts';
import { type DecisionRequest, type LiveCampaign, REASONS, threadOf } from './types.ts';

// POST /v1/decisions (ad server): the sponsored message to insert into one thread now, or 204.
// The answer is an offer, held in this process's memory and answered without waiting for any
// write; it carries a signed token that turns into an impression when delivery is seen
// (impressions-route.ts, the platform webhooks). GET /v1/decisions/:id/click records a click.

const JSON_TYPE = 'application/json; charset=utf-8';
const id = z.string().min(1).max(128);
export const decisionInput = strictObject({
  user_id: id,
  business_id: id,
  thread_id: id.optional().describe('Default t_<business_id>_<user_id>, as in events'),
  channel: z.enum(CHANNELS),
  context: strictObject({
    keywords: z
      .array(z.string().max(512))
      .max(64)
      .optional()
      .describe("Keywords of the conversation now, matched against campaigns' keywords_any / keywords_none"),
  }).optional(),
  explain: z.boolean().optional().describe('Also return every candidate and why it was or was not chosen'),
}).meta({
  examples: [
    {
      user_id: 'u_8d1f',
      business_id: 'biz_barber_42',
      channel: 'whatsapp',
      context: { keywords: ['haircut'] },
    },
  ],
});
type DecisionBody = z.infer<typeof decisionInput>;

const DECISION_KEYS = new Set(['user_id', 'business_id', 'thread_id', 'channel', 'context', 'explain']);
const CHANNEL_SET = new Set<string>(CHANNELS);
const isId = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= 128;

/**
 * The body as it is, when decisionInput accepts it unchanged and it asks for no explanation;
 * undefined otherwise (the schema then says what it accepts). Never accepts what the schema
 * refuses.
 */
export function plainDecision(v: unknown): DecisionBody | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  for (const k in o) if (!DECISION_KEYS.has(k)) return undefined;
  if (!isId(o.user_id) || !isId(o.business_id) || !CHANNEL_SET.has(o.channel as string)) return undefined;
  if (o.thread_id !== undefined && !isId(o.thread_id)) return undefined;
  if (o.explain !== undefined && o.explain !== false) return undefined;
  if (o.context !== undefined) {
    const c = o.context;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) return undefined;
    for (const k in c) if (k !== 'keywords') return undefined;
    const words = (c as { keywords?: unknown }).keywords;
    if (words !== undefined) {
      if (!Array.isArray(words) || words.length > 64) return undefined;
      for (const w of words) if (typeof w !== 'string' || w.length > 512) return undefined;
    }
  }
  return o as DecisionBody;
}

const engineStatus = z.object({
  ready: z.boolean(),
  campaigns: z.number(),
  users: z.number(),
  behind: z.number().describe('Events on the bus not yet read'),
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
    delivery_tag: z
      .string()
      .describe(
        'The offer token. Put it on the message you send: Messenger/Instagram Send API message.metadata (echoed in message_echoes), WhatsApp Cloud API biz_opaque_callback_data (echoed in statuses); the echo records the impression. Or confirm it with POST /v1/impressions.',
      ),
    tracking: z.object({
      impression_url: z.string().describe('GET when the message is shown: records the impression'),
      click_url: z.string().describe('Send the user here on a click: records sponsored.clicked'),
    }),
    postback_payload: z.string().describe('Put on chat buttons: a tap becomes sponsored.clicked'),
    hold_seconds: z
      .number()
      .describe('How long the offer is held for this thread; confirm delivery within it'),
    candidates: z.array(candidateView).optional(),
  })
  .meta({
    id: 'Decision',
    description: 'An offer: held for hold_seconds, an impression once its delivery is confirmed',
    example: {
      decision_id: 'd_4f1c9a2b7e1a',
      campaign_id: 'cmp_spring',
      creative: {
        text: 'A spring cut, 20% off',
        buttons: [{ title: 'Book', url: 'https://barber.example/book' }],
      },
      price_micros: 5000,
      delivery_tag:
        'o1.d_4f1c9a2b7e1a.cmp_spring.biz_barber_42.u_8d1f.1..3uw.mhx9c3k0.Zk3v9Qp0aT1sYw8bLr2nXc',
      tracking: {
        impression_url:
          'https://ads.example.com/v1/impressions/o1.d_4f1c9a2b7e1a.cmp_spring.biz_barber_42.u_8d1f.1..3uw.mhx9c3k0.Zk3v9Qp0aT1sYw8bLr2nXc',
        click_url:
          'https://ads.example.com/v1/decisions/d_4f1c9a2b7e1a/click?o=o1.d_4f1c9a2b7e1a.cmp_spring.biz_barber_42.u_8d1f.1..3uw.mhx9c3k0.Zk3v9Qp0aT1sYw8bLr2nXc',
      },
      postback_payload: 'parley:d:d_4f1c9a2b7e1a:cmp_spring',
      hold_seconds: 600,
    },
  });
const explainedNone = z
  .object({ decision_id: z.null(), candidates: z.array(candidateView) })
  .meta({ id: 'NoDecisionExplained', description: 'Nothing was chosen; why, for each candidate' });
// Loose on purpose: platforms decorate outbound links (fbclid, utm_*), and a click must still count.
// Every value is written by Parley and signed; the document says what each one is.
const legacy = (what: string) => `${what} (click URLs made before offer tokens; covered by s)`;
const clickQuery = z.object({
  c: z.string().max(128).optional().describe(legacy('The campaign id')),
  u: z.string().max(128).optional().describe(legacy('The user id')),
  b: z.string().max(128).optional().describe(legacy('The business id')),
  ch: z.string().max(32).optional().describe(legacy('The channel')),
  t: z.string().max(128).optional().describe(legacy('The thread id')),
  to: z.string().max(2048).optional().describe(legacy('Where to send the user after the click')),
  s: z
    .string()
    .max(64)
    .optional()
    .describe(legacy('The signature of the fields above: 32 base64url characters')),
  o: offerTokenSchema.optional(),
});

/** The record of a would-be offer of a campaign with a holdout (docs/reports.md, lift). */
function withheldEvent(req: DecisionRequest, w: Withheld): CanonicalEvent {
  return {
    event_id: derivedEventId('withheld', w.decisionId),
    type: 'sponsored.withheld',
    occurred_at: new Date().toISOString(),
    business_id: req.business_id,
    user_id: req.user_id,
    thread_id: threadOf(req),
    channel: req.channel as Channel,
    props: {
      decision_id: w.decisionId,
      campaign_id: w.campaignId,
      creative_id: w.campaignId,
      price_micros: w.priceMicros,
      group: w.group,
    },
  };
}

/** A campaign's parts of an answer as JSON, made once per campaign version. */
type CampaignJson = { id: string; idInner: string; creative: string };
const campaignJson = new WeakMap<LiveCampaign, CampaignJson>();
const inner = (s: string) => JSON.stringify(s).slice(1, -1);

function jsonOf(c: LiveCampaign): CampaignJson {
  let j = campaignJson.get(c);
  if (!j) {
    j = { id: JSON.stringify(c.id), idInner: inner(c.id), creative: JSON.stringify(c.source.creative) };
    campaignJson.set(c, j);
  }
  return j;
}

/**
 * An offer's answer, written directly: the same JSON as JSON.stringify of the documented object
 * (decisionView), field for field and in that order, from parts made once per campaign. Decision
 * ids and tokens need no escaping (letters, digits, `_`, `-`, `~`, `.`); `baseInner` is the
 * escaped base URL.
 */
export function offerAnswer(
  c: LiveCampaign,
  decisionId: string,
  priceMicros: number,
  token: string,
  baseInner: string,
  holdSeconds: number,
): string {
  const j = jsonOf(c);
  return `{"decision_id":"${decisionId}","campaign_id":${j.id},"creative":${j.creative},"price_micros":${priceMicros},"delivery_tag":"${token}","tracking":{"impression_url":"${baseInner}/v1/impressions/${token}","click_url":"${baseInner}/v1/decisions/${decisionId}/click?o=${token}"},"postback_payload":"parley:d:${decisionId}:${j.idInner}","hold_seconds":${holdSeconds}}`;
}

/**
 * What a click URL says: from its offer token (a click may come long after the offer, so the
 * token's age does not matter, and the destination is the campaign's button URL), or from the
 * signed query of click URLs made before offers had tokens.
 */
function clickFacts(
  deps: { clickKey: Buffer; engine: DecisionEngine },
  decisionId: string,
  q: z.infer<typeof clickQuery>,
) {
  if (q.o === undefined) return verifyClick(deps.clickKey, decisionId, q);
  const check = verifyOffer(deps.clickKey, q.o, Date.now(), Number.POSITIVE_INFINITY);
  if (!check.ok || check.facts.decision_id !== decisionId) return undefined;
  const o: OfferFacts = check.facts;
  const to = deps.engine.state.campaign(o.campaign_id)?.source.creative.buttons?.find((b) => b.url)?.url;
  return { ...o, ...(to ? { to } : {}) };
}

export async function decisionsRoute(
  app: App,
  deps: {
    engine: DecisionEngine;
    feed: EventFeed;
    auth: Auth;
    eventsTopic: string;
    clickKey: Buffer;
    offerLog?: OfferLog;
    /** Where the would-be offers of campaigns with a holdout go (sponsored.withheld). */
    withheldLog?: BatchLog<CanonicalEvent>;
    publicUrl?: string;
    metrics?: Metrics;
  },
) {
  const served = deps.metrics?.decisions.labels('served');
  const none = deps.metrics?.decisions.labels('none');
  const holdSeconds = deps.engine.state.holdMs / 1000;
  const pre = requireRole(deps.auth, 'adserver');
  // The base of tracking URLs, escaped for JSON: the configured public URL, or the address each
  // request came to (remembered for the few an api process is reached at).
  const fixedBase = deps.publicUrl === undefined ? undefined : inner(deps.publicUrl);
  const innerOf = memoized(64, inner);
  const baseInner = (req: FastifyRequest) => fixedBase ?? innerOf(`${req.protocol}://${req.host}`);

  /** A decision without explanation: the offer as JSON, or nothing to offer (204). */
  const offer = (body: DecisionBody, base: string): Answer => {
    const { decision, withheld } = deps.engine.decide(body);
    if (withheld) for (const w of withheld) deps.withheldLog?.add(withheldEvent(body, w));
    if (!decision) {
      none?.inc();
      return { status: 204 };
    }
    served?.inc();
    const f = decision.served;
    deps.offerLog?.add(f);
    const token = signOffer(deps.clickKey, offerFacts(f));
    return {
      status: 200,
      json: offerAnswer(decision.campaign, f.decisionId, f.priceMicros, token, base, holdSeconds),
    };
  };

  app.get(
    '/v1/decisions/ready',
    {
      onRequest: requireRole(deps.auth, 'adserver', 'metrics'),
      schema: {
        summary: 'Whether this process’s decision engine has caught up',
        tags: ['decisions'],
        response: {
          200: engineStatus.describe('Caught up'),
          503: engineStatus.describe('Still catching up'),
        },
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
          200: z
            .union([decisionView, explainedNone])
            .describe(
              'An offer, held for hold_seconds; with explain and nothing eligible, only the candidates',
            ),
          204: z.null().describe('Nothing is eligible for this thread now'),
          400: errorBody,
          401: errorBody,
          403: errorBody,
          503: errorBody,
        },
      },
    },
    // Not async: the answer is sent at once, with no promise to settle per decision.
    (req, reply) => {
      const body = req.body;
      deps.auth.checkBusiness(principalOf(req), body.business_id);
      if (!deps.engine.isReady()) throw new ParleyError('PARLEY_ERR_NOT_READY');
      if (!body.explain) {
        const a = offer(body, baseInner(req));
        // Already JSON (offerAnswer): sent as it is.
        if (a.status === 200) reply.type(JSON_TYPE).send(a.json as never);
        else reply.code(204).send(null);
        return;
      }
      const { decision, candidates, withheld } = deps.engine.decide(body);
      if (withheld) for (const w of withheld) deps.withheldLog?.add(withheldEvent(body, w));
      if (!decision) {
        none?.inc();
        reply.send({ decision_id: null, candidates });
        return;
      }
      served?.inc();
      const f = decision.served;
      deps.offerLog?.add(f);
      const c = decision.campaign;
      const token = signOffer(deps.clickKey, offerFacts(f));
      const base = deps.publicUrl ?? `${req.protocol}://${req.host}`;
      reply.send({
        decision_id: f.decisionId,
        campaign_id: c.id,
        creative: c.source.creative,
        price_micros: f.priceMicros,
        delivery_tag: token,
        tracking: {
          impression_url: `${base}/v1/impressions/${token}`,
          click_url: `${base}/v1/decisions/${f.decisionId}/click?o=${token}`,
        },
        postback_payload: `parley:d:${f.decisionId}:${c.id}`,
        hold_seconds: holdSeconds,
        candidates,
      });
    },
  );

  // Ordinary decisions (no explanation) from keys seen recently are also answered on the answer
  // path (core/http/answer-path.ts): the same answer, without the framework's per-request work.
  app.parleyAnswers?.post<DecisionBody>('/v1/decisions', {
    auth: deps.auth,
    roles: ['adserver'],
    accept: (value, p) => {
      const body = plainDecision(value);
      return body && canSee(p, body.business_id) ? body : undefined;
    },
    answer: (body, req) => {
      if (!deps.engine.isReady()) return undefined;
      const protocol = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
      return offer(body, fixedBase ?? innerOf(`${protocol}://${req.headers.host}`));
    },
  });

  app.get(
    '/v1/decisions/:id/click',
    {
      schema: {
        summary: 'Record a click on a served decision (signed URL from the decision)',
        description:
          'Open the click URL of a decision as it is: its query is the offer token `o`, or the signed fields of older click URLs. A click URL that Parley did not make (a made-up or altered value) is refused with 400.',
        tags: ['decisions'],
        params: strictObject({ id }),
        querystring: clickQuery,
        response: {
          204: z.null().describe('The click is recorded'),
          302: z.null().describe('The click is recorded; on to the button’s URL'),
          400: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      const f = clickFacts(deps, req.params.id, req.query);
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
      await deps.feed.publish(deps.eventsTopic, [event]);
      deps.engine.state.noteClicked(f.decision_id, f.campaign_id);
      if (f.to) return reply.redirect(f.to, 302);
      return reply.code(204).send(null);
    },
  );
}
