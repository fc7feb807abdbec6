import { z } from 'zod';
import type { Bus } from '../bus/types.ts';
import type { Store } from '../store/client.ts';
import { insertIsolating, type Refused } from '../store/isolate.ts';
import { compileRule } from './rule.ts';
import type { CompiledRule } from './rule.ts';
import { buildSegmentMembersQuery, buildSegmentStateQuery } from './sql.ts';
import type { SegmentRecord } from './store.ts';
import { type Change, StreamingEvaluator, type UserRow } from './stream.ts';

// Membership changes: the rows of segment_membership and the messages on the membership topic
// (key `${segment_id}:${user_id}`, compacted, so the latest message per key is the current state).

export const membershipMessageSchema = z
  .object({
    type: z.enum(['segment.entered', 'segment.exited']),
    segment_id: z.string(),
    user_id: z.string(),
    /** The segment's business; null for a segment over every business. */
    business_id: z.string().nullable(),
    at: z.iso.datetime(),
    /** Increases with every change of this (segment, user); a consumer keeps the highest. */
    version: z.number().int().nonnegative(),
  })
  .meta({ id: 'MembershipChange' });
export type MembershipMessage = z.infer<typeof membershipMessageSchema>;

export const membershipKey = (segmentId: string, userId: string) => `${segmentId}:${userId}`;

/** Versions from the wall clock in microseconds, strictly increasing within a process. */
export function createVersionClock(now: () => number = Date.now) {
  let last = 0;
  return () => {
    last = Math.max(now() * 1000, last + 1);
    return last;
  };
}

export type MembershipWriter = {
  /** Publishes the changes, then stores them; resolves when both are done. */
  write(changes: Change[]): Promise<void>;
  /**
   * Queues the changes and resolves once they, and every change queued before them, are
   * published; a failure rejects and keeps them queued for the next call. Concurrent callers share
   * one publish (group commit), in queue order. Storing follows in the background, in order,
   * retried until it succeeds. The topic always has at least what the table has, so a restart
   * that reconciles against the table re-announces anything not yet stored instead of losing it.
   */
  publish(changes: Change[]): Promise<void>;
  /** Resolves when every change queued so far is published and stored. */
  flush(): Promise<void>;
  /** Stops retrying background stores (at shutdown; a restart reconciles what is left). */
  close(): void;
};

type Row = {
  segment_id: string;
  user_id: string;
  business_id: string;
  member: number;
  changed_at: string;
  version: number;
};

/** Publishes changes on the membership topic, then stores them in segment_membership; both idempotent per version. */
export function createMembershipWriter(deps: {
  store: Store;
  bus: Bus;
  topic: string;
  nextVersion?: () => number;
  onStoreError?: (err: unknown) => void;
  /** Rows the store refuses for their data: they are not retried (e.g. sent to the dead-letter topic). */
  onRefused?: (refused: Refused<Row>[]) => Promise<void>;
}): MembershipWriter {
  const nextVersion = deps.nextVersion ?? createVersionClock();
  const table = `${deps.store.database}.segment_membership`;
  let queue: Row[] = [];
  let draining: Promise<void> | undefined;
  let closed = false;
  let outbox: { c: Change; version: number }[] = [];
  let queued = 0; // changes ever queued for publishing
  let published = 0; // of which published
  let sending: Promise<void> | undefined;

  async function publishChunk(chunk: { c: Change; version: number }[]): Promise<Row[]> {
    await deps.bus.publish(
      deps.topic,
      chunk.map(({ c, version }) => {
        const msg: MembershipMessage = {
          type: c.member ? 'segment.entered' : 'segment.exited',
          segment_id: c.segmentId,
          user_id: c.userId,
          business_id: c.businessId ?? null,
          at: new Date(c.atMs).toISOString(),
          version,
        };
        return { key: membershipKey(c.segmentId, c.userId), value: JSON.stringify(msg) };
      }),
    );
    return chunk.map(({ c, version }) => ({
      segment_id: c.segmentId,
      user_id: c.userId,
      business_id: c.businessId ?? '',
      member: c.member ? 1 : 0,
      changed_at: new Date(c.atMs).toISOString(),
      version,
    }));
  }

  const insert = async (values: readonly Row[]) => {
    await deps.store.client.insert({ table, values: values as Row[], format: 'JSONEachRow' });
  };

  function drain(): Promise<void> {
    draining ??= (async () => {
      let backoff = 100;
      while (queue.length && !closed) {
        const rows = queue.slice(0, 50_000);
        try {
          // A row the store cannot take (a user id it cannot read) must not stop every later change.
          const refused = await insertIsolating(rows, insert);
          if (refused.length) await deps.onRefused?.(refused);
          queue = queue.slice(rows.length);
          backoff = 100;
        } catch (err) {
          deps.onStoreError?.(err);
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    })().finally(() => {
      draining = undefined;
    });
    return draining;
  }

  function versioned(changes: Change[]) {
    const out: { c: Change; version: number }[][] = [];
    for (let i = 0; i < changes.length; i += 10_000)
      out.push(changes.slice(i, i + 10_000).map((c) => ({ c, version: nextVersion() })));
    return out;
  }

  return {
    async write(changes) {
      // Published first, stored second: the table is what a restart reconciles against, so it
      // must never claim a change the topic has not seen.
      for (const chunk of versioned(changes)) await insert(await publishChunk(chunk));
    },
    async publish(changes) {
      for (const c of changes) outbox.push({ c, version: nextVersion() });
      queued += changes.length;
      const target = queued;
      while (published < target) {
        sending ??= (async () => {
          const chunk = outbox.slice(0, 10_000);
          const rows = await publishChunk(chunk);
          outbox = outbox.slice(chunk.length);
          published += chunk.length;
          for (const r of rows) queue.push(r);
          void drain();
        })().finally(() => {
          sending = undefined;
        });
        await sending;
      }
    },
    async flush() {
      await this.publish([]);
      while ((queue.length && !closed) || draining) await (draining ?? drain());
    },
    close() {
      closed = true;
    },
  };
}

/** Current members of a segment as stored (latest row per user is a member). */
export async function storedMembers(store: Store, segmentId: string): Promise<Set<string>> {
  const rs = await store.client.query({
    query: `SELECT user_id FROM ${store.database}.segment_membership FINAL WHERE segment_id = {segment_id:String} AND member = 1`,
    query_params: { segment_id: segmentId },
    format: 'JSONCompactEachRow',
  });
  const out = new Set<string>();
  for await (const rows of rs.stream()) for (const r of rows) out.add((r.json() as [string])[0]);
  return out;
}

/** Stored members in user_id order after a cursor (the members endpoint). */
export function buildStoredMembersQuery(
  db: string,
  opts: { segmentId: string; limit: number; after?: string },
) {
  const params: Record<string, unknown> = { segment_id: opts.segmentId, limit: opts.limit };
  let after = '';
  if (opts.after !== undefined) {
    after = 'AND user_id > {after:String}';
    params.after = opts.after;
  }
  return {
    query: `SELECT user_id, toUnixTimestamp64Milli(changed_at) AS since_ms FROM ${db}.segment_membership FINAL
WHERE segment_id = {segment_id:String} AND member = 1 ${after}
ORDER BY user_id
LIMIT {limit:UInt32}`,
    query_params: params,
  };
}

/** The streaming evaluator's starting state of a segment at nowMs, read from stored events. */
export async function loadSegmentState(
  store: Store,
  rule: CompiledRule,
  opts: { nowMs: number; businessId?: string },
): Promise<UserRow[]> {
  const rs = await store.client.query({
    ...buildSegmentStateQuery(store.database, rule, opts),
    format: 'JSONCompactEachRow',
  });
  const rows: UserRow[] = [];
  for await (const batch of rs.stream()) {
    for (const r of batch) {
      const [userId, firstMs, events] = r.json() as [
        string,
        number | string,
        [string, number | string, number | string][],
      ];
      rows.push({
        userId,
        firstMs: Number(firstMs),
        events: events.map(([id, ms, mask]) => [id, Number(ms), Number(mask)]),
      });
    }
  }
  return rows;
}

/**
 * Brings the stored and published membership of a segment to its batch evaluation at asOf:
 * users who should be in and are not enter, dated when they entered by the events (as the
 * streaming evaluator dates them); the others exit. Members already stored keep their row, and
 * so their `since`. A deleted segment empties.
 */
export async function reconcileMembership(
  store: Store,
  writer: MembershipWriter,
  seg: SegmentRecord,
  asOfMs: number,
) {
  const want = new Set<string>();
  if (!seg.deleted) {
    const q = buildSegmentMembersQuery(store.database, compileRule(seg.rule), {
      asOfMs,
      businessId: seg.business_id ?? undefined,
    });
    const rs = await store.client.query({ ...q, format: 'JSONCompactEachRow' });
    for await (const rows of rs.stream()) for (const r of rows) want.add((r.json() as [string])[0]);
  }
  const have = await storedMembers(store, seg.id);
  const businessId = seg.business_id ?? undefined;
  const changes: Change[] = [];
  const since = new Map<string, number>();
  if ([...want].some((u) => !have.has(u))) {
    const def = { id: seg.id, businessId, rule: compileRule(seg.rule), version: seg.version };
    const rows = await loadSegmentState(store, def.rule, { nowMs: asOfMs, businessId });
    for (const c of new StreamingEvaluator().load(def, rows, [], asOfMs)) since.set(c.userId, c.atMs);
  }
  for (const u of want)
    if (!have.has(u))
      changes.push({ segmentId: seg.id, userId: u, businessId, member: true, atMs: since.get(u) ?? asOfMs });
  for (const u of have)
    if (!want.has(u)) changes.push({ segmentId: seg.id, userId: u, businessId, member: false, atMs: asOfMs });
  await writer.write(changes);
  return {
    entered: changes.filter((c) => c.member).length,
    exited: changes.filter((c) => !c.member).length,
    size: want.size,
  };
}
