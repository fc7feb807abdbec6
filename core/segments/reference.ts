import type { CanonicalEvent } from '../events/schema.ts';
import { type CompiledRule, countHolds, evalTree, type Leaf, matchesClause } from './rule.ts';

// DESIGN.md's meaning of a segment, evaluated directly over a list of events. Slow and obvious
// on purpose: it is the oracle the SQL compiler and the streaming evaluator are tested against.

export type RefEvent = Pick<
  CanonicalEvent,
  'event_id' | 'type' | 'business_id' | 'user_id' | 'channel' | 'props'
> & { occurred_at: string | number };

export const eventMs = (e: { occurred_at: string | number }) =>
  typeof e.occurred_at === 'number' ? e.occurred_at : Date.parse(e.occurred_at);

/** True when the event satisfies the leaf's type and every where clause (time aside). */
export function matchesLeaf(
  l: Leaf,
  e: { type: string; channel: string; props: Record<string, unknown> },
): boolean {
  if (e.type !== l.type) return false;
  return l.where.every((c) => matchesClause(c, c.prop === undefined ? e.channel : e.props[c.prop]));
}

/** The sorted user ids in the segment at time `asOfMs`. */
export function referenceMembers(
  rule: CompiledRule,
  events: RefEvent[],
  asOfMs: number,
  businessId?: string,
): string[] {
  // Distinct events by event_id, in scope, at or before T.
  const byId = new Map<string, RefEvent>();
  for (const e of events) {
    if (businessId !== undefined && e.business_id !== businessId) continue;
    if (eventMs(e) > asOfMs) continue;
    byId.set(e.event_id, e);
  }
  const byUser = new Map<string, RefEvent[]>();
  for (const e of byId.values()) {
    const list = byUser.get(e.user_id) ?? [];
    list.push(e);
    byUser.set(e.user_id, list);
  }
  const members: string[] = [];
  for (const [user, list] of byUser) {
    const holds = (l: Leaf) => {
      const n = list.filter(
        (e) => matchesLeaf(l, e) && (l.withinMs === undefined || eventMs(e) > asOfMs - l.withinMs),
      ).length;
      return countHolds(l, n);
    };
    if (evalTree(rule.root, holds)) members.push(user);
  }
  return members.sort();
}
