import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import type { AuditLog } from '../core/audit.ts';
import type { ApiKeyConfig } from '../core/config.ts';
import { ParleyError } from '../core/errors.ts';
import { type Auth, ROLES, hashKey, keyId } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import type { KeyStore } from '../core/http/keys.ts';

// /v1/keys and /v1/audit (admin): keys people can manage. A secret is shown once, when made;
// only its hash is stored. Every change is written to the audit log.

const keyView = z
  .object({
    id: z.string().describe('The first 16 hex digits of the SHA-256 of the secret'),
    name: z.string(),
    roles: z.array(z.enum(ROLES)),
    businesses: z.array(z.string()),
    source: z.enum(['api', 'config']).describe('config: set in PARLEY_API_KEYS, changed only there'),
    created_at: z.string().nullable(),
    created_by: z.string().nullable(),
    expires_at: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' });
const keyMade = keyView.extend({ key: z.string().describe('The secret: shown only this once') });
const keyInput = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    roles: z.array(z.enum(ROLES)).min(1).max(ROLES.length),
    businesses: z.array(z.string().min(1).max(128)).max(1000).optional(),
  })
  .meta({
    examples: [{ name: 'Barber reports', roles: ['marketer', 'analyst'], businesses: ['biz_barber_42'] }],
  });
const rotateInput = z
  .strictObject({
    overlap_seconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86400)
      .default(86400)
      .describe('How long the old secret stays valid'),
  })
  .meta({ examples: [{ overlap_seconds: 3600 }] });
const idParams = z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/, 'id: 16 hex digits') });
const auditQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.iso.datetime({ offset: true }).optional().describe('Entries strictly before this time'),
  action: z.string().max(64).optional(),
});
const auditView = z
  .object({
    entries: z.array(
      z.object({
        at: z.string(),
        id: z.string(),
        actor: z.string().describe('Id of the key that did it'),
        action: z.string(),
        target: z.string(),
        details: z.unknown(),
      }),
    ),
  })
  .meta({ id: 'AuditLog' });
const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody, 409: errorBody };

export async function keysRoute(
  app: App,
  deps: { auth: Auth; keys: KeyStore; audit: AuditLog; configKeys: ApiKeyConfig[] },
) {
  const pre = requireRole(deps.auth, 'admin');
  const configured = deps.configKeys.map((k) => ({
    id: keyId(hashKey(k.key)),
    name: 'PARLEY_API_KEYS',
    roles: k.roles,
    businesses: k.businesses ?? [],
    source: 'config' as const,
    created_at: null,
    created_by: null,
    expires_at: null,
  }));
  const refuseConfigured = (id: string) => {
    if (configured.some((k) => k.id === id))
      throw new ParleyError(
        'PARLEY_ERR_CONFLICT',
        `Key ${id} is set in PARLEY_API_KEYS; change it there and restart`,
      );
  };
  const notFound = (id: string) => new ParleyError('PARLEY_ERR_NOT_FOUND', `No key ${id}`);
  const actor = (req: FastifyRequest) => keyId(principalOf(req).keyHash);

  app.post(
    '/v1/keys',
    {
      onRequest: pre,
      schema: {
        summary: 'Make an API key (its secret is shown only in this answer)',
        tags: ['keys'],
        body: keyInput,
        response: { 201: keyMade.describe('The key, with its secret shown only this once'), ...errors },
      },
    },
    async (req, reply) => {
      const { key, record } = await deps.keys.create({ ...req.body, createdBy: actor(req) });
      await deps.audit.record(actor(req), 'key.created', record.id, {
        name: record.name,
        roles: record.roles,
        businesses: record.businesses,
      });
      await deps.auth.reload();
      return reply.code(201).send({ ...record, source: 'api', key });
    },
  );

  app.get(
    '/v1/keys',
    {
      onRequest: pre,
      schema: {
        summary: 'Keys in force, without their secrets',
        tags: ['keys'],
        response: {
          200: z.object({ keys: z.array(keyView) }).describe('Keys in force, without their secrets'),
          ...errors,
        },
      },
    },
    async () => ({
      keys: [...configured, ...(await deps.keys.list()).map((k) => ({ ...k, source: 'api' as const }))],
    }),
  );

  app.delete(
    '/v1/keys/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Revoke a key at once',
        tags: ['keys'],
        params: idParams,
        response: { 204: z.null(), ...errors },
      },
    },
    async (req, reply) => {
      refuseConfigured(req.params.id);
      const r = await deps.keys.revoke(req.params.id);
      if (!r) throw notFound(req.params.id);
      await deps.audit.record(actor(req), 'key.revoked', r.id, { name: r.name });
      await deps.auth.reload();
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/keys/:id/rotate',
    {
      onRequest: pre,
      schema: {
        summary: 'A new secret for a key; the old one stays valid for the overlap',
        tags: ['keys'],
        params: idParams,
        body: rotateInput.optional(),
        response: {
          201: keyMade
            .extend({ replaces: keyView })
            .describe('The new key (its secret shown once) and the key it replaces'),
          ...errors,
        },
      },
    },
    async (req, reply) => {
      refuseConfigured(req.params.id);
      const overlapS = req.body?.overlap_seconds ?? 86400;
      const r = await deps.keys.rotate(req.params.id, overlapS * 1000, actor(req));
      if (!r) throw notFound(req.params.id);
      await deps.audit.record(actor(req), 'key.rotated', r.old.id, {
        new_id: r.record.id,
        old_expires_at: r.old.expires_at,
      });
      await deps.auth.reload();
      return reply.code(201).send({
        ...r.record,
        source: 'api',
        key: r.key,
        replaces: { ...r.old, source: 'api' },
      });
    },
  );

  app.get(
    '/v1/audit',
    {
      onRequest: pre,
      schema: {
        summary: 'The audit log: who changed keys or erased people, and when (newest first)',
        tags: ['keys'],
        querystring: auditQuery,
        response: { 200: auditView.describe('Changes to keys and erasures, newest first'), ...errors },
      },
    },
    async (req) => ({ entries: await deps.audit.list(req.query) }),
  );
}
