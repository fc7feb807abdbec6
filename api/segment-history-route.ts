import { z } from 'zod';
import { type Auth, visible } from '../core/http/auth.ts';
import { type App, errorBody, principalOf, requireRole } from '../core/http/fastify.ts';
import { compileRule } from '../core/segments/rule.ts';
import { buildSegmentMembersQuery } from '../core/segments/sql.ts';
import { createSegmentStore } from '../core/segments/store.ts';
import type { Store } from '../core/store/client.ts';

// GET /v1/segments/:id/history: the segment's rule evaluated from stored events at the end of
// each UTC day (today: now), with the users who entered and exited since the day before. One
// members query per day, so its cost grows with days × segment size.

const DAY = 86_400_000;
const params = z.object({ id: z.string().min(1).max(128) });
const query = z
  .object({ days: z.coerce.number().int().min(1).max(90).default(30).describe('Days back, today included') })
  .strict();
const history = z
  .object({
    days: z.array(z.object({ day: z.string(), size: z.number(), entered: z.number(), exited: z.number() })),
  })
  .meta({
    id: 'SegmentHistory',
    description: "The segment's size at the end of each day, with the users who entered and exited",
  });

/** The instants the history is evaluated at: the end of each of the last `days` UTC days, then now. */
export function historyInstants(days: number, now: number): { day: string; asOfMs: number }[] {
  const today = Math.floor(now / DAY) * DAY;
  const out: { day: string; asOfMs: number }[] = [];
  for (let i = days; i >= 0; i--) {
    const start = today - i * DAY;
    out.push({ day: new Date(start).toISOString().slice(0, 10), asOfMs: i === 0 ? now : start + DAY - 1 });
  }
  return out;
}

export async function segmentHistoryRoute(app: App, deps: { store: Store; auth: Auth }) {
  const segments = createSegmentStore(deps.store);
  app.get(
    '/v1/segments/:id/history',
    {
      preHandler: requireRole(deps.auth, 'marketer'),
      schema: {
        summary: 'Size per day over the last days, with users entered and exited each day',
        tags: ['segments'],
        params,
        querystring: query,
        response: {
          200: history.describe('The segment’s size at the end of each UTC day, with entries and exits'),
          400: errorBody,
          401: errorBody,
          403: errorBody,
          404: errorBody,
        },
      },
    },
    async (req) => {
      const s = visible(principalOf(req), await segments.get(req.params.id), `No segment ${req.params.id}`);
      const rule = compileRule(s.rule);
      // The day before the first is evaluated too, so the first day has its entries and exits.
      const instants = historyInstants(req.query.days, Date.now());
      let previous: Set<string> | undefined;
      const days = [];
      for (const { day, asOfMs } of instants) {
        const q = buildSegmentMembersQuery(deps.store.database, rule, {
          asOfMs,
          businessId: s.business_id ?? undefined,
        });
        const rows = await deps.store.rows<{ user_id: string }>(q);
        const members = new Set(rows.map((r) => r.user_id));
        if (previous) {
          let entered = 0;
          let exited = 0;
          for (const u of members) if (!previous.has(u)) entered++;
          for (const u of previous) if (!members.has(u)) exited++;
          days.push({ day, size: members.size, entered, exited });
        }
        previous = members;
      }
      return { days };
    },
  );
}
