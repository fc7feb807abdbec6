import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type Auth, readScope } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import { TABLE_FORMATS } from '../core/http/openapi.ts';
import {
  type AttributionRow,
  NO_CURRENCY,
  attributionAnswer,
  attributionModelsAnswer,
  attributionModelsRequestSchema,
  attributionRequestSchema,
  buildAttributionModelsQuery,
  buildAttributionQuery,
  isDefaultWindows,
} from '../core/reports/attribution.ts';
import {
  buildCampaignsQuery,
  byTargeting,
  campaignsQuerySchema,
  TARGETING_KINDS,
  type TargetingKind,
} from '../core/reports/campaigns.ts';
import { buildStoredAttributionModelsQuery, buildStoredAttributionQuery } from '../core/reports/credits.ts';
import {
  type FunnelRow,
  buildFunnelQuery,
  funnelAnswer,
  funnelRequestSchema,
} from '../core/reports/funnel.ts';
import { LIFT_COLUMNS, liftAnswer, liftTable } from '../core/reports/lift-answer.ts';
import { type LiftRow, buildLiftQuery, liftRequestSchema } from '../core/reports/lift-query.ts';
import { MODELS, type Model } from '../core/reports/models.ts';
import type { Store } from '../core/store/client.ts';
import { liftResponse } from './lift-schema.ts';
import { type Column, type Row, pickFormat, sendTable, streamQuery } from './report-formats.ts';

// Analyst reports (docs/reports.md): funnels, attribution, campaign performance and lift, each one SQL
// statement, answered as JSON, CSV or an Arrow IPC stream by the Accept header.

const step = z.object({
  type: z.string(),
  users: z.number(),
  median_seconds_from_previous: z.number().nullable(),
});
const timeToConvert = z
  .object({
    median_seconds: z.number().nullable(),
    buckets: z.array(z.object({ from_seconds: z.number(), to_seconds: z.number(), users: z.number() })),
  })
  .optional()
  .describe(
    'With time_to_convert: true, users who reached the last step by seconds from the first step to the last, in buckets [from_seconds, to_seconds) (the last one ends at the window, included)',
  );
const funnelAnswerSchema = z
  .union([
    z.object({ steps: z.array(step), time_to_convert: timeToConvert }),
    z.object({
      groups: z.array(z.object({ value: z.string(), steps: z.array(step), time_to_convert: timeToConvert })),
    }),
  ])
  .meta({ id: 'FunnelReport', description: 'Users reaching each step (per group with a breakdown)' });
const byCurrency = z
  .record(z.string(), z.number())
  .describe(
    `Money per currency (ISO 4217 code as sent, upper-cased; ${NO_CURRENCY} when the conversion has none), never summed across currencies`,
  );
const campaignName = z.string().nullable().describe('The campaign’s name (null when it is unknown here)');
const attributionAnswerSchema = z
  .object({
    model: z.enum(MODELS),
    rows: z.array(
      z.object({
        campaign_id: z.string(),
        campaign_name: campaignName,
        conversions: z.number(),
        value_by_currency: byCurrency,
      }),
    ),
    unattributed: z.object({ conversions: z.number(), value_by_currency: byCurrency }),
  })
  .meta({
    id: 'AttributionReport',
    description: 'Conversions and value credited to each campaign by the model',
  });
const attributionModelsAnswerSchema = z
  .object({ models: z.array(attributionAnswerSchema).describe('One report per model, in the order asked') })
  .meta({
    id: 'AttributionModelsReport',
    description: 'Several attribution models side by side, computed together',
  });
const campaignRow = z.object({
  campaign_id: z.string(),
  campaign_name: campaignName,
  targeting_kind: z
    .enum(TARGETING_KINDS)
    .describe('contextual: keywords only; segment: segments only; both; none: neither'),
  served: z.number(),
  clicks: z.number(),
  click_rate: z.number().nullable(),
  spend_micros: z.number(),
  conversions: z.number(),
  cost_per_conversion_micros: z.number().nullable(),
  value_by_currency: byCurrency,
  return_on_spend_by_currency: byCurrency.describe('value_by_currency per currency unit of spend'),
});
type CampaignRow = z.infer<typeof campaignRow>;
type FlatCampaignRow = Record<string, number | string | null>;

/** The statement's rows (one per campaign and currency) as one JSON row per campaign. */
function campaignRows(flat: FlatCampaignRow[]): CampaignRow[] {
  const out = new Map<string, CampaignRow>();
  const num = (v: number | string | null) => (v === null ? null : Number(v));
  for (const r of flat) {
    const id = String(r.campaign_id);
    let c = out.get(id);
    if (!c) {
      c = {
        campaign_id: id,
        campaign_name: r.campaign_name === null ? null : String(r.campaign_name),
        targeting_kind: String(r.targeting_kind) as TargetingKind,
        served: Number(r.served),
        clicks: Number(r.clicks),
        click_rate: num(r.click_rate),
        spend_micros: Number(r.spend_micros),
        conversions: Number(r.campaign_conversions),
        cost_per_conversion_micros: num(r.cost_per_conversion_micros),
        value_by_currency: {},
        return_on_spend_by_currency: {},
      };
      out.set(id, c);
    }
    if (r.currency === null) continue;
    c.value_by_currency[String(r.currency)] = Number(r.value);
    if (r.return_on_spend !== null)
      c.return_on_spend_by_currency[String(r.currency)] = Number(r.return_on_spend);
  }
  return [...out.values()];
}
const campaignsAnswerSchema = z
  .object({
    model: z.enum(MODELS),
    campaigns: z.array(campaignRow),
    by_targeting: z
      .array(
        z.object({
          targeting_kind: z.enum(TARGETING_KINDS),
          campaigns: z.number(),
          served: z.number(),
          clicks: z.number(),
          click_rate: z.number().nullable(),
          spend_micros: z.number(),
          conversions: z.number(),
          value_by_currency: byCurrency,
        }),
      )
      .describe(
        'The campaigns summed per targeting kind (JSON only; CSV and Arrow carry targeting_kind per row)',
      ),
  })
  .meta({ id: 'CampaignsReport', description: 'Delivery, spend and attributed conversions per campaign' });

const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 406: errorBody };
const FORMATS_NOTE =
  'JSON by default; CSV with `Accept: text/csv`; an Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream`.';

export type ReportsDeps = {
  store: Store;
  auth: Auth;
  /** Read attribution at the default windows from the processor's stored credits. */
  storedCredits: boolean;
};

const FUNNEL_COLUMNS: Column[] = [
  { name: 'value', type: 'string' },
  { name: 'step', type: 'count' },
  { name: 'type', type: 'string' },
  { name: 'users', type: 'count' },
  { name: 'median_seconds_from_previous', type: 'float' },
];

export async function reportsRoute(app: App, deps: ReportsDeps) {
  const { store, auth } = deps;
  const pre = requireRole(auth, 'analyst');

  app.post(
    '/v1/reports/funnel',
    {
      onRequest: pre,
      schema: {
        summary: 'Funnel: users reaching each step',
        description: FORMATS_NOTE,
        produces: TABLE_FORMATS,
        tags: ['reports'],
        body: funnelRequestSchema.meta({
          examples: [
            {
              steps: [{ type: 'message.received' }, { type: 'sponsored.clicked' }, { type: 'order.placed' }],
              window_seconds: 604_800,
              from: '2026-11-01',
              to: '2026-12-01',
              breakdown: 'channel',
            },
          ],
        }),
        response: { 200: funnelAnswerSchema, ...errors },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const r = req.body;
      const businesses = readScope(principalOf(req), r.business_id);
      const answer = funnelAnswer(
        r,
        await store.rows<FunnelRow>(buildFunnelQuery(store.database, r, businesses)),
      );
      if (format === 'json') return answer;
      const groups = answer.groups ?? [{ value: '', steps: answer.steps }];
      const table: Row[] = groups.flatMap((g) =>
        g.steps.map((s, i) => ({ value: g.value, step: i + 1, ...s })),
      );
      return sendTable(reply, format, FUNNEL_COLUMNS, table);
    },
  );

  type Query = { query: string; query_params: Record<string, unknown> };
  // Both attribution routes: stored credits answer the default windows, the events any others.
  async function attribution<
    R extends Parameters<typeof isDefaultWindows>[0] & { business_id?: string },
    T,
    A,
  >(
    req: FastifyRequest,
    reply: FastifyReply,
    r: R,
    stored: (db: string, r: R, businesses?: string[]) => Query,
    fromEvents: (db: string, r: R, businesses?: string[]) => Query,
    answer: (rows: T[]) => A,
  ) {
    const format = pickFormat(req.headers.accept);
    const businesses = readScope(principalOf(req), r.business_id);
    const q = (deps.storedCredits && isDefaultWindows(r) ? stored : fromEvents)(
      store.database,
      r,
      businesses,
    );
    if (format === 'json') return answer(await store.rows<T>(q));
    return streamQuery(reply, store, format, q);
  }

  app.post(
    '/v1/reports/attribution',
    {
      onRequest: pre,
      schema: {
        summary: 'Attribution of conversions to campaigns by model',
        description: `${FORMATS_NOTE} Value is reported per currency. CSV and Arrow have one row per campaign and currency (campaign_id, campaign_name, currency, conversions, value); unattributed rows have an empty campaign_id.`,
        produces: TABLE_FORMATS,
        tags: ['reports'],
        body: attributionRequestSchema.meta({
          examples: [{ model: 'position_based', from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z' }],
        }),
        response: { 200: attributionAnswerSchema, ...errors },
      },
    },
    (req, reply) =>
      attribution(
        req,
        reply,
        req.body,
        buildStoredAttributionQuery,
        buildAttributionQuery,
        (rows: AttributionRow[]) => attributionAnswer(req.body.model, rows),
      ),
  );

  app.post(
    '/v1/reports/attribution/models',
    {
      onRequest: pre,
      schema: {
        summary: 'Attribution by several models at once (one pass over the data)',
        description: `${FORMATS_NOTE} The attribution report's request without \`model\`, and \`models\` (distinct; default every model). CSV and Arrow have one row per model, campaign and currency (model, campaign_id, campaign_name, currency, conversions, value); unattributed rows have an empty campaign_id.`,
        produces: TABLE_FORMATS,
        tags: ['reports'],
        body: attributionModelsRequestSchema.meta({
          examples: [{ from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z' }],
        }),
        response: { 200: attributionModelsAnswerSchema, ...errors },
      },
    },
    (req, reply) =>
      attribution(
        req,
        reply,
        req.body,
        buildStoredAttributionModelsQuery,
        buildAttributionModelsQuery,
        (rows: (AttributionRow & { model: Model })[]) => attributionModelsAnswer(req.body.models, rows),
      ),
  );

  app.get(
    '/v1/reports/campaigns',
    {
      onRequest: pre,
      schema: {
        summary: 'Campaign performance: delivery, spend and attributed conversions',
        description: `${FORMATS_NOTE} Conversions use the model at the default windows; value and return on spend are per currency. CSV and Arrow have one row per campaign and conversion currency: delivery and spend repeat on each, conversions and value are that currency’s, campaign_conversions the campaign’s; currency is empty for a campaign without conversions.`,
        produces: TABLE_FORMATS,
        tags: ['reports'],
        querystring: campaignsQuerySchema,
        response: { 200: campaignsAnswerSchema, ...errors },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const q = req.query;
      const built = buildCampaignsQuery(store.database, q, readScope(principalOf(req), q.business_id), {
        storedCredits: deps.storedCredits,
      });
      if (format !== 'json') return streamQuery(reply, store, format, built);
      const campaigns = campaignRows(await store.rows<FlatCampaignRow>(built));
      return { model: q.model, campaigns, by_targeting: byTargeting(campaigns) };
    },
  );

  app.post(
    '/v1/reports/lift',
    {
      preHandler: pre,
      schema: {
        summary: 'Lift: what a campaign caused, treatment against its holdout (ghost offers)',
        description: `${FORMATS_NOTE} Give campaign_id or business_id. CSV and Arrow have one row per campaign and currency of conversion value.`,
        tags: ['reports'],
        body: liftRequestSchema,
        response: { 200: liftResponse, ...errors },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const r = req.body;
      const businesses = readScope(principalOf(req), r.business_id);
      const answer = liftAnswer(await store.rows<LiftRow>(buildLiftQuery(store.database, r, businesses)));
      if (format === 'json') return answer;
      return sendTable(reply, format, LIFT_COLUMNS, liftTable(answer));
    },
  );
}
