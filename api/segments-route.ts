import { z } from 'zod';
import type { Bus } from '../core/bus/types.ts';
import { ParleyError } from '../core/errors.ts';
import { type Auth, type Principal, checkBusiness, limitedTo, visible } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import {
  buildStoredMembersQuery,
  createMembershipWriter,
  reconcileMembership,
} from '../core/segments/membership.ts';
import { ruleSchema } from '../core/segments/rule-schema.ts';
import { segmentSize } from '../core/segments/size.ts';
import { createSegmentStore, type SegmentRecord } from '../core/segments/store.ts';
import { instant, nonBlank, pageCursor, strictObject } from '../core/input.ts';
import type { Store } from '../core/store/client.ts';

const businessId = z.string().min(1).max(128);
const exampleRule = {
  all: [
    { performed: 'message.received', count: { gte: 3 }, within_seconds: 2_592_000 },
    { not: { performed: 'appointment.booked' } },
  ],
};
const segmentInput = strictObject({
  name: nonBlank(200, 'name must not be empty'),
  business_id: businessId
    .optional()
    .describe('Scope the segment to one business; leave out for every business'),
  rule: ruleSchema,
}).meta({
  examples: [{ name: 'Chatty, never booked', business_id: 'biz_barber_42', rule: exampleRule }],
});
const segmentView = z
  .object({
    id: z.string(),
    name: z.string(),
    business_id: z.string().nullable(),
    rule: z.unknown(),
    version: z.number(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Segment', description: 'The segment as stored' });
const segmentCreated = segmentView
  .extend({ size: z.number().describe('Members right after creation') })
  .describe('The segment as stored, with its size right after the change');
const idParams = strictObject({ id: z.string().min(1).max(128) });
const sizeView = z
  .object({
    size: z.number(),
    as_of: z.string(),
    min_audience_size: z.number(),
    targetable: z.boolean().describe('size ≥ min_audience_size'),
  })
  .meta({ id: 'SegmentSize', description: 'The current number of members' });
const encodeCursor = (userId: string) => Buffer.from(userId, 'utf8').toString('base64url');
const membersQuery = strictObject({
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  cursor: pageCursor.meta({ examples: [encodeCursor('u_8d1f')] }).optional(),
});
const membersPage = z
  .object({
    members: z.array(
      z.object({
        user_id: z.string(),
        since: z.string().describe('When the user entered the segment (event time), for the current stay'),
      }),
    ),
    next: z.string().nullable(),
  })
  .meta({ id: 'SegmentMembers', description: 'One page of current members and the cursor of the next page' });
const previewInput = strictObject({
  business_id: businessId.optional(),
  rule: ruleSchema,
  as_of: instant.optional().describe('Evaluate at this time (default now)'),
}).meta({ examples: [{ business_id: 'biz_barber_42', rule: exampleRule }] });
const previewView = z.object({ size: z.number(), sample: z.array(z.string()), as_of: z.string() }).meta({
  id: 'SegmentPreview',
  description: 'Size and a sample of members at as_of, computed from stored events',
});
const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody };

const view = (s: SegmentRecord) => ({
  id: s.id,
  name: s.name,
  business_id: s.business_id,
  rule: s.rule,
  version: s.version,
  created_at: s.created_at,
  updated_at: s.updated_at,
});
function decodeCursor(c: string) {
  const s = Buffer.from(c, 'base64url').toString('utf8');
  if (!s || encodeCursor(s) !== c)
    throw new ParleyError('PARLEY_ERR_BAD_REQUEST', 'cursor: not a cursor this API returned');
  return s;
}

export async function segmentsRoute(
  app: App,
  deps: { store: Store; bus: Bus; auth: Auth; membershipTopic: string; minAudienceSize: number },
) {
  const segments = createSegmentStore(deps.store);
  const writer = createMembershipWriter({ store: deps.store, bus: deps.bus, topic: deps.membershipTopic });
  const pre = requireRole(deps.auth, 'marketer');

  const load = async (id: string, p: Principal) => visible(p, await segments.get(id), `No segment ${id}`);

  app.post(
    '/v1/segments',
    {
      onRequest: pre,
      schema: {
        summary: 'Define a segment',
        tags: ['segments'],
        body: segmentInput,
        response: { 201: segmentCreated, ...errors },
      },
    },
    async (req, reply) => {
      checkBusiness(principalOf(req), req.body.business_id);
      const s = await segments.create({
        name: req.body.name,
        business_id: req.body.business_id ?? null,
        rule: req.body.rule,
      });
      const { size } = await reconcileMembership(deps.store, writer, s, Date.now());
      return reply.code(201).send({ ...view(s), size });
    },
  );

  app.get(
    '/v1/segments',
    {
      onRequest: pre,
      schema: {
        summary: 'List segments',
        tags: ['segments'],
        response: {
          200: z.object({ segments: z.array(segmentView) }).describe('The segments this key may see'),
          ...errors,
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const list = await segments.list({
        businesses: limitedTo(p),
      });
      return { segments: list.map(view) };
    },
  );

  app.get(
    '/v1/segments/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Read a segment',
        tags: ['segments'],
        params: idParams,
        response: { 200: segmentView, ...errors },
      },
    },
    async (req) => view(await load(req.params.id, principalOf(req))),
  );

  app.put(
    '/v1/segments/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Replace a segment’s name, scope and rule',
        tags: ['segments'],
        params: idParams,
        body: segmentInput,
        response: { 200: segmentCreated, ...errors },
      },
    },
    async (req) => {
      const prev = await load(req.params.id, principalOf(req));
      checkBusiness(principalOf(req), req.body.business_id);
      const s = await segments.update(prev, {
        name: req.body.name,
        business_id: req.body.business_id ?? null,
        rule: req.body.rule,
      });
      const { size } = await reconcileMembership(deps.store, writer, s, Date.now());
      return { ...view(s), size };
    },
  );

  app.delete(
    '/v1/segments/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Delete a segment; its members exit',
        tags: ['segments'],
        params: idParams,
        response: { 204: z.null().describe('Deleted; its members exited'), ...errors },
      },
    },
    async (req, reply) => {
      const s = await segments.remove(await load(req.params.id, principalOf(req)));
      await reconcileMembership(deps.store, writer, s, Date.now());
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/segments/:id/size',
    {
      onRequest: pre,
      schema: {
        summary: 'Size of a segment now, from stored events',
        tags: ['segments'],
        params: idParams,
        response: { 200: sizeView, ...errors },
      },
    },
    async (req) => {
      const s = await load(req.params.id, principalOf(req));
      const asOf = Date.now();
      const { size } = await segmentSize(deps.store, s.rule, { asOfMs: asOf, businessId: s.business_id });
      return {
        size,
        as_of: new Date(asOf).toISOString(),
        min_audience_size: deps.minAudienceSize,
        targetable: size >= deps.minAudienceSize,
      };
    },
  );

  app.get(
    '/v1/segments/:id/members',
    {
      onRequest: pre,
      schema: {
        summary: 'Current members, by user_id',
        tags: ['segments'],
        params: idParams,
        querystring: membersQuery,
        response: { 200: membersPage, ...errors },
      },
    },
    async (req) => {
      const s = await load(req.params.id, principalOf(req));
      const after = req.query.cursor === undefined ? undefined : decodeCursor(req.query.cursor);
      const q = buildStoredMembersQuery(deps.store.database, {
        segmentId: s.id,
        limit: req.query.limit,
        after,
      });
      const rows = await deps.store.rows<{ user_id: string; since_ms: number | string }>(q);
      const last = rows.at(-1);
      return {
        members: rows.map((r) => ({ user_id: r.user_id, since: new Date(Number(r.since_ms)).toISOString() })),
        next: rows.length === req.query.limit && last ? encodeCursor(last.user_id) : null,
      };
    },
  );

  app.post(
    '/v1/segments/preview',
    {
      onRequest: pre,
      schema: {
        summary: 'Size and a sample of a rule, from stored events',
        tags: ['segments'],
        body: previewInput,
        response: { 200: previewView, ...errors },
      },
    },
    async (req) => {
      checkBusiness(principalOf(req), req.body.business_id);
      const asOf = req.body.as_of === undefined ? Date.now() : Date.parse(req.body.as_of);
      const { size, sample } = await segmentSize(deps.store, req.body.rule, {
        asOfMs: asOf,
        businessId: req.body.business_id,
      });
      return { size, sample, as_of: new Date(asOf).toISOString() };
    },
  );
}
