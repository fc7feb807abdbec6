import { z } from 'zod';
import type { AuditLog } from '../core/audit.ts';
import { ParleyError } from '../core/errors.ts';
import type { ErasureStep, Erasures } from '../core/erasure/registry.ts';
import { eraseFromTables } from '../core/erasure/tables.ts';
import { type Auth, keyId } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import type { Logger } from '../core/log.ts';
import type { Store } from '../core/store/client.ts';

// DELETE /v1/users/{user_id} (admin): erases a person everywhere, or in one business. In order:
// the erasure is recorded (every consumer then drops the person's events that the bus accepted
// before it, and forgets them in memory, within a second); their rows are deleted from every
// table; after every process has had time to see the erasure, the tables are swept once more for
// rows a process wrote before it did. The record names the person only by a keyed hash.

const erasureView = z
  .object({
    id: z.string(),
    business_id: z.string().nullable(),
    requested_at: z.string(),
    requested_by: z.string().describe('Id of the key that asked'),
    status: z.enum(['running', 'done', 'failed']),
    steps: z.array(
      z.object({
        name: z.string(),
        status: z.enum(['done', 'running', 'pending']),
        rows: z.record(z.string(), z.number()).optional().describe('Rows removed, per table'),
      }),
    ),
    updated_at: z.string(),
  })
  .meta({ id: 'Erasure' });
const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody, 503: errorBody };

export async function usersRoute(
  app: App,
  deps: {
    store: Store;
    auth: Auth;
    erasures?: Erasures;
    audit: AuditLog;
    logger: Logger;
    /** How long other processes are given to see an erasure before the second sweep. */
    settleMs: number;
  },
) {
  const pre = requireRole(deps.auth, 'admin');
  const log = deps.logger.child({ component: 'erasure' });
  const erasures = () => {
    if (deps.erasures) return deps.erasures;
    throw new ParleyError(
      'PARLEY_ERR_NOT_CONFIGURED',
      'Erasure needs PARLEY_HASH_SECRET (the same in every process) when running on Kafka',
    );
  };

  const initialSteps = (): ErasureStep[] => [
    { name: 'recorded; consumers drop the person’s events', status: 'done' },
    { name: 'forgotten in memory', status: 'pending' },
    { name: 'deleted from tables', status: 'pending' },
    { name: 'tables swept again after every process saw the erasure', status: 'pending' },
  ];

  async function run(
    e: Erasures,
    row: Awaited<ReturnType<Erasures['begin']>>,
    userId: string,
    business: string | null,
  ) {
    const steps = initialSteps();
    const step = async (i: number, work: () => Promise<Record<string, number> | undefined>) => {
      steps[i].status = 'running';
      await e.update(row, 'running', steps);
      const rows = await work();
      steps[i] = { ...steps[i], status: 'done', ...(rows ? { rows } : {}) };
    };
    await step(1, async () => {
      await e.refresh();
      return undefined;
    });
    await step(2, () => eraseFromTables(deps.store, userId, business));
    await step(3, async () => {
      await new Promise((r) => setTimeout(r, deps.settleMs));
      return eraseFromTables(deps.store, userId, business);
    });
    await e.update(row, 'done', steps);
  }

  app.delete(
    '/v1/users/:user_id',
    {
      onRequest: pre,
      schema: {
        summary: 'Erase a person from every table and from memory (202; follow the Location)',
        tags: ['users'],
        params: z.strictObject({ user_id: z.string().min(1).max(256) }),
        querystring: z.strictObject({
          business_id: z.string().min(1).max(128).optional().describe('Erase only this business’s data'),
        }),
        response: {
          202: erasureView.describe('The erasure, accepted; follow it at /v1/erasures/{id}'),
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const e = erasures();
      const business = req.query.business_id ?? null;
      const by = keyId(principalOf(req).keyHash);
      const row = await e.begin(req.params.user_id, business, by, initialSteps());
      await deps.audit.record(by, 'user.erased', row.id, { business_id: business });
      run(e, row, req.params.user_id, business).catch(async (err) => {
        log.error({ err, erasure: row.id }, 'erasure failed; repeat the request to finish it');
        await e.update(row, 'failed', JSON.parse(row.steps)).catch(() => {});
      });
      return reply.code(202).header('location', `/v1/erasures/${row.id}`).send(e.view(row));
    },
  );

  app.get(
    '/v1/erasures/:id',
    {
      onRequest: pre,
      schema: {
        summary: 'Progress of an erasure',
        tags: ['users'],
        params: z.strictObject({ id: z.uuid() }),
        response: { 200: erasureView.describe('The erasure and its progress'), ...errors },
      },
    },
    async (req) => {
      const r = await erasures().get(req.params.id);
      if (!r) throw new ParleyError('PARLEY_ERR_NOT_FOUND', `No erasure ${req.params.id}`);
      return r;
    },
  );
}
