import { z } from 'zod';
import {
  type Campaign,
  type CampaignInput,
  campaignInputSchema,
  targetedSegments,
} from '../core/campaigns/schema.ts';
import { createCampaignStore } from '../core/campaigns/store.ts';
import { ParleyError } from '../core/errors.ts';
import { type Auth, type Principal, canSee, checkBusiness, readScope, visible } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import { strictObject } from '../core/input.ts';
import { segmentSize } from '../core/segments/size.ts';
import { createSegmentStore } from '../core/segments/store.ts';
import type { Store } from '../core/store/client.ts';

// /v1/campaigns: marketers create, read, change and delete campaigns. Targeting is checked
// against the segments as they are now: each must exist, belong to the campaign's business (or
// span every business), and a segment that selects users must reach the minimum audience size.

const campaignView = z
  .object({
    id: z.string(),
    business_id: z.string(),
    name: z.string(),
    status: z.string(),
    creative: z.unknown(),
    targeting: z.unknown(),
    schedule: z.unknown(),
    budget: z.unknown(),
    bid: z.unknown(),
    frequency_cap: z.unknown(),
    pacing: z.string(),
    holdout: z.number().describe('Share of users held out as a control group for lift'),
    version: z.number(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Campaign', description: 'The campaign as stored' });
const campaignBody = campaignInputSchema.meta({
  examples: [
    {
      business_id: 'biz_barber_42',
      name: 'Saturday beard trims',
      status: 'active',
      creative: { text: 'Beard trim this Saturday: 20% off', buttons: [{ title: 'Book now' }] },
      targeting: { segments_all: ['seg_chatty_never_booked'], channels: ['whatsapp', 'messenger'] },
      schedule: { start: '2026-11-20T00:00:00Z', end: '2026-12-20T00:00:00Z' },
      budget: { total_micros: 500_000_000, daily_micros: 20_000_000 },
      bid: { cpm_micros: 4_000_000 },
      frequency_cap: { max: 2, per_seconds: 604_800 },
      pacing: 'even',
    },
  ],
});
const idParams = strictObject({ id: z.string().min(1).max(128) });
const listQuery = strictObject({ business_id: z.string().min(1).max(128).optional() });
const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody, 422: errorBody };

export const campaignView_ = (c: Campaign) => {
  const { deleted: _d, ...rest } = c;
  return { ...rest, holdout: c.holdout ?? 0 };
};

export async function campaignsRoute(
  app: App,
  deps: { store: Store; auth: Auth; minAudienceSize: number; onChange?: () => void | Promise<void> },
) {
  const campaigns = createCampaignStore(deps.store);
  const segments = createSegmentStore(deps.store);
  const pre = requireRole(deps.auth, 'marketer');

  const load = async (id: string, p: Principal) => visible(p, await campaigns.get(id), `No campaign ${id}`);

  /** Refuses targeting a marketer must change, saying what and why. */
  async function checkTargeting(input: CampaignInput, p: Principal) {
    const { all, positive } = targetedSegments(input);
    for (const id of all) {
      const s = await segments.get(id);
      if (!s || s.deleted || !canSee(p, s.business_id))
        throw new ParleyError('PARLEY_ERR_UNPROCESSABLE', `targeting: segment ${id} does not exist`, {
          details: { segment_id: id },
        });
      if (s.business_id !== null && s.business_id !== input.business_id)
        throw new ParleyError(
          'PARLEY_ERR_UNPROCESSABLE',
          `targeting: segment ${id} belongs to business ${s.business_id}, not ${input.business_id}`,
          { details: { segment_id: id, segment_business_id: s.business_id } },
        );
      if (!positive.includes(id)) continue; // exclusions may be small
      const { size } = await segmentSize(deps.store, s.rule, {
        asOfMs: Date.now(),
        businessId: s.business_id,
      });
      if (size < deps.minAudienceSize)
        throw new ParleyError(
          'PARLEY_ERR_UNPROCESSABLE',
          `targeting: segment ${id} has ${size} members; a campaign may only target segments of at least ${deps.minAudienceSize}`,
          { details: { segment_id: id, size, min_audience_size: deps.minAudienceSize } },
        );
    }
  }

  app.post(
    '/v1/campaigns',
    {
      onRequest: pre,
      schema: {
        summary: 'Create a campaign',
        tags: ['campaigns'],
        body: campaignBody,
        response: { 201: campaignView, ...errors },
      },
    },
    async (req, reply) => {
      checkBusiness(principalOf(req), req.body.business_id);
      await checkTargeting(req.body, principalOf(req));
      const c = await campaigns.create(req.body);
      await deps.onChange?.();
      return reply.code(201).send(campaignView_(c));
    },
  );

  app.get(
    '/v1/campaigns',
    {
      onRequest: pre,
      schema: {
        summary: 'List campaigns',
        tags: ['campaigns'],
        querystring: listQuery,
        response: {
          200: z.object({ campaigns: z.array(campaignView) }).describe('The campaigns this key may see'),
          ...errors,
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const limited = readScope(p, req.query.business_id);
      const businesses = req.query.business_id !== undefined ? [req.query.business_id] : limited;
      return { campaigns: (await campaigns.list({ businesses })).map(campaignView_) };
    },
  );

  app.get(
    '/v1/campaigns/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Read a campaign',
        tags: ['campaigns'],
        params: idParams,
        response: { 200: campaignView, ...errors },
      },
    },
    async (req) => campaignView_(await load(req.params.id, principalOf(req))),
  );

  app.put(
    '/v1/campaigns/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Replace a campaign',
        tags: ['campaigns'],
        params: idParams,
        body: campaignBody,
        response: { 200: campaignView, ...errors },
      },
    },
    async (req) => {
      const prev = await load(req.params.id, principalOf(req));
      checkBusiness(principalOf(req), req.body.business_id);
      if (req.body.business_id !== prev.business_id)
        throw new ParleyError(
          'PARLEY_ERR_UNPROCESSABLE',
          `business_id cannot change (campaign ${prev.id} belongs to ${prev.business_id}); create a new campaign instead`,
        );
      await checkTargeting(req.body, principalOf(req));
      const c = await campaigns.update(prev, req.body);
      await deps.onChange?.();
      return campaignView_(c);
    },
  );

  app.delete(
    '/v1/campaigns/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Delete a campaign; it is no longer served',
        tags: ['campaigns'],
        params: idParams,
        response: { 204: z.null().describe('Deleted; it is no longer served'), ...errors },
      },
    },
    async (req, reply) => {
      await campaigns.remove(await load(req.params.id, principalOf(req)));
      await deps.onChange?.();
      return reply.code(204).send(null);
    },
  );
}
