import { z } from 'zod';
import { type Auth, type Principal, limitedTo } from '../core/http/auth.ts';
import { type App, errorBody, requireRole } from '../core/http/fastify.ts';
import {
  type AttributionRow,
  attributionAnswer,
  attributionRequestSchema,
  buildAttributionQuery,
  isDefaultWindows,
} from '../core/reports/attribution.ts';
import { buildCampaignsQuery, campaignsQuerySchema } from '../core/reports/campaigns.ts';
import { buildStoredAttributionQuery } from '../core/reports/credits.ts';
import {
  type FunnelRow,
  buildFunnelQuery,
  funnelAnswer,
  funnelRequestSchema,
} from '../core/reports/funnel.ts';
import { MODELS } from '../core/reports/models.ts';
import type { Store } from '../core/store/client.ts';
import { type Column, type Row, pickFormat, sendTable, streamQuery } from './report-formats.ts';

// Analyst reports (docs/reports.md): funnels, attribution and campaign performance, each one SQL
// statement, answered as JSON, CSV or an Arrow IPC stream by the Accept header.

const step = z.object({
  type: z.string(),
  users: z.number(),
  median_seconds_from_previous: z.number().nullable(),
});
const funnelAnswerSchema = z
  .union([
    z.object({ steps: z.array(step) }),
    z.object({ groups: z.array(z.object({ value: z.string(), steps: z.array(step) })) }),
  ])
  .meta({ id: 'FunnelReport' });
const attributionAnswerSchema = z
  .object({
    model: z.enum(MODELS),
    rows: z.array(z.object({ campaign_id: z.string(), conversions: z.number(), value: z.number() })),
    unattributed: z.object({ conversions: z.number(), value: z.number() }),
  })
  .meta({ id: 'AttributionReport' });
const campaignRow = z.object({
  campaign_id: z.string(),
  served: z.number(),
  clicks: z.number(),
  click_rate: z.number().nullable(),
  spend_micros: z.number(),
  conversions: z.number(),
  value: z.number(),
  cost_per_conversion_micros: z.number().nullable(),
  return_on_spend: z.number().nullable(),
});
const campaignsAnswerSchema = z
  .object({ model: z.enum(MODELS), campaigns: z.array(campaignRow) })
  .meta({ id: 'CampaignsReport' });

const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 406: errorBody };
const FORMATS_NOTE =
  'JSON by default; CSV with `Accept: text/csv`; an Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream`.';

export type ReportsDeps = {
  store: Store;
  auth: Auth;
  /** Read attribution at the default windows from the processor's stored credits. */
  storedCredits: boolean;
};

/** The businesses a key may read (undefined: all), after checking an explicit business_id. */
function scope(auth: Auth, p: Principal, businessId: string | undefined): string[] | undefined {
  if (businessId !== undefined) auth.checkBusiness(p, businessId);
  return limitedTo(p);
}

async function rows<T>(
  store: Store,
  q: { query: string; query_params: Record<string, unknown> },
): Promise<T[]> {
  const rs = await store.client.query({ ...q, format: 'JSONEachRow' });
  return rs.json<T>();
}

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
        tags: ['reports'],
        body: funnelRequestSchema,
        response: { 200: funnelAnswerSchema, ...errors },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const r = req.body;
      const businesses = scope(auth, req.principal!, r.business_id);
      const answer = funnelAnswer(
        r,
        await rows<FunnelRow>(store, buildFunnelQuery(store.database, r, businesses)),
      );
      if (format === 'json') return answer;
      const groups = answer.groups ?? [{ value: '', steps: answer.steps }];
      const table: Row[] = groups.flatMap((g) =>
        g.steps.map((s, i) => ({ value: g.value, step: i + 1, ...s })),
      );
      return sendTable(reply, format, FUNNEL_COLUMNS, table);
    },
  );

  app.post(
    '/v1/reports/attribution',
    {
      onRequest: pre,
      schema: {
        summary: 'Attribution of conversions to campaigns by model',
        description: `${FORMATS_NOTE} In CSV and Arrow, the unattributed row has an empty campaign_id.`,
        tags: ['reports'],
        body: attributionRequestSchema,
        response: { 200: attributionAnswerSchema, ...errors },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const r = req.body;
      const businesses = scope(auth, req.principal!, r.business_id);
      const q =
        deps.storedCredits && isDefaultWindows(r)
          ? buildStoredAttributionQuery(store.database, r, businesses)
          : buildAttributionQuery(store.database, r, businesses);
      if (format === 'json') return attributionAnswer(r.model, await rows<AttributionRow>(store, q));
      return streamQuery(reply, store, format, {
        query: `SELECT campaign_id, conversions, value FROM (${q.query})`,
        query_params: q.query_params,
      });
    },
  );

  app.get(
    '/v1/reports/campaigns',
    {
      onRequest: pre,
      schema: {
        summary: 'Campaign performance: delivery, spend and attributed conversions',
        description: `${FORMATS_NOTE} Conversions use the model at the default windows.`,
        tags: ['reports'],
        querystring: campaignsQuerySchema,
        response: { 200: campaignsAnswerSchema, ...errors },
      },
    },
    async (req, reply) => {
      const format = pickFormat(req.headers.accept);
      const q = req.query;
      const built = buildCampaignsQuery(store.database, q, scope(auth, req.principal!, q.business_id));
      if (format !== 'json') return streamQuery(reply, store, format, built);
      const campaigns = (await rows<Record<string, number | string | null>>(store, built)).map((r) => ({
        campaign_id: String(r.campaign_id),
        served: Number(r.served),
        clicks: Number(r.clicks),
        click_rate: r.click_rate === null ? null : Number(r.click_rate),
        spend_micros: Number(r.spend_micros),
        conversions: Number(r.conversions),
        value: Number(r.value),
        cost_per_conversion_micros:
          r.cost_per_conversion_micros === null ? null : Number(r.cost_per_conversion_micros),
        return_on_spend: r.return_on_spend === null ? null : Number(r.return_on_spend),
      }));
      return { model: q.model, campaigns };
    },
  );
}
