import type { Store } from '../store/client.ts';
import { compileRule } from './rule.ts';
import { buildSegmentSizeQuery } from './sql.ts';

/**
 * A rule's size at asOfMs over the stored events, with a sample of its members. What a campaign's
 * minimum audience is checked against and what a segment's preview shows: one query for both.
 */
export async function segmentSize(
  store: Store,
  rule: unknown,
  opts: { asOfMs: number; businessId: string | null | undefined },
): Promise<{ size: number; sample: string[] }> {
  const [row] = await store.rows<{ size: number | string; sample: string[] }>(
    buildSegmentSizeQuery(store.database, compileRule(rule), {
      asOfMs: opts.asOfMs,
      businessId: opts.businessId ?? undefined,
    }),
  );
  return { size: Number(row?.size ?? 0), sample: row?.sample ?? [] };
}
