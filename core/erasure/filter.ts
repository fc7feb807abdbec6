import { createHmac } from 'node:crypto';
import type { EventHandler } from '../events/feed.ts';
import type { EventMessage } from '../events/message.ts';

// Which people are erased, and the filter every consumer puts in front of its handler. A person
// is known only by a keyed hash of their user id. The hash costs microseconds, so each erasure
// also carries a 16-bit bucket of the id (FNV-1a): an event whose user falls in no erased bucket
// — nearly all of them — passes after a few nanoseconds of arithmetic.

export type Erased = { userHash: string; bucket: number; businessId: string | null; atMs: number };

export function bucketOf(userId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) & 0xffff;
}

export const userHasher = (key: Buffer) => (userId: string) =>
  createHmac('sha256', key).update(userId).digest('hex');

export class ErasedSet {
  private readonly buckets = new Set<number>();
  private readonly byHash = new Map<string, Erased[]>();
  constructor(readonly hash: (userId: string) => string) {}

  get size() {
    return this.byHash.size;
  }

  add(e: Erased) {
    this.buckets.add(e.bucket);
    const list = this.byHash.get(e.userHash) ?? [];
    list.push(e);
    this.byHash.set(e.userHash, list);
  }

  /** The erasures that apply to this user (any business), or undefined; cheap when none does. */
  of(userId: string): Erased[] | undefined {
    if (this.buckets.size === 0 || !this.buckets.has(bucketOf(userId))) return undefined;
    return this.byHash.get(this.hash(userId));
  }

  /** Whether an event of this user and business, accepted by the bus at atMs, was erased. */
  covers(userId: string, businessId: string | undefined, atMs: number): boolean {
    const list = this.of(userId);
    if (!list) return false;
    return list.some((e) => atMs <= e.atMs && (e.businessId === null || e.businessId === businessId));
  }

  /** Whether a message (events topic: key = user id; membership topic: key = segment:user) is erased. */
  coversMessage(m: EventMessage): boolean {
    if (this.buckets.size === 0) return false;
    const colon = m.key.indexOf(':');
    const userId = colon < 0 ? m.key : m.key.slice(colon + 1);
    if (!this.buckets.has(bucketOf(userId))) return false;
    let businessId: string | undefined;
    try {
      businessId = (m.event() as { business_id?: string }).business_id;
    } catch {
      businessId = undefined;
    }
    return this.covers(userId, businessId, m.timestamp);
  }

  /**
   * Whether a membership change is erased: its message accepted by the bus before the erasure,
   * or the change itself dated before it (`at`: when the user entered or left), however late it
   * was published. A segment re-evaluated from the store before the erasure reached its rows
   * announces old members anew; their entries are the erased person's data, not new data.
   */
  coversMembership(m: EventMessage, change: { user_id: string; business_id?: string | null; at?: unknown }) {
    if (this.coversMessage(m)) return true;
    const atMs = typeof change.at === 'string' ? Date.parse(change.at) : Number.NaN;
    return !Number.isNaN(atMs) && this.covers(change.user_id, change.business_id ?? undefined, atMs);
  }
}

/**
 * Wraps a batch handler so it never sees erased messages. The prefix it reports finished (in
 * the filtered batch) is mapped back to the whole batch, so commits stay exact.
 */
export function withoutErased(erased: ErasedSet, handler: EventHandler): EventHandler {
  return async (batch, ctx) => {
    if (erased.size === 0) return handler(batch, ctx);
    const kept: number[] = [];
    batch.messages.forEach((m, i) => {
      if (!erased.coversMessage(m)) kept.push(i);
    });
    if (kept.length === batch.messages.length) return handler(batch, ctx);
    if (kept.length === 0) return undefined; // nothing left to do: commit the batch
    const done = await handler({ ...batch, messages: kept.map((i) => batch.messages[i]) }, ctx);
    if (typeof done !== 'number' || done >= kept.length) return undefined;
    return kept[done]; // everything before the first unfinished kept message
  };
}
