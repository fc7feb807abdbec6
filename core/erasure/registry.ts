import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Store } from '../store/client.ts';
import { type Erased, ErasedSet, bucketOf, userHasher } from './filter.ts';

// The erasures table, read by every process: each keeps the set of erased people in memory
// (refreshed every second) and tells its in-memory state to forget them.

export type ErasureStep = {
  name: string;
  status: 'done' | 'running' | 'pending';
  rows?: Record<string, number>;
};
export type ErasureRecord = {
  id: string;
  business_id: string | null;
  requested_at: string;
  requested_by: string;
  status: 'running' | 'done' | 'failed';
  steps: ErasureStep[];
  updated_at: string;
};
/** Told of new erasures; `match` says which of them a user id falls under. */
export type ForgetListener = (match: (userId: string) => Erased[]) => void | Promise<void>;

type Row = {
  id: string;
  user_hash: string;
  bucket: number;
  business_id: string;
  requested_ms: number | string;
  requested_by: string;
  status: ErasureRecord['status'];
  steps: string;
  updated_ms: number | string;
  version: number | string;
};
const COLUMNS = `id, user_hash, bucket, business_id, toUnixTimestamp64Milli(requested_at) AS requested_ms,
  requested_by, status, steps, toUnixTimestamp64Milli(updated_at) AS updated_ms, version`;

export function createErasures(deps: { store: Store; key: Buffer; logger: Logger; refreshMs?: number }) {
  const log = deps.logger.child({ component: 'erasures' });
  const table = `${deps.store.database}.erasures`;
  const set = new ErasedSet(userHasher(deps.key));
  const known = new Set<string>();
  const listeners: ForgetListener[] = [];
  let timer: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> | undefined;
  let next: Promise<void> | undefined;

  async function rows(where = '', params: Record<string, unknown> = {}) {
    return deps.store.rows<Row>({
      query: `SELECT ${COLUMNS} FROM ${table} FINAL ${where}`,
      query_params: params,
    });
  }

  async function load() {
    const fresh: Erased[] = [];
    for (const r of await rows()) {
      if (known.has(r.id)) continue;
      known.add(r.id);
      const e: Erased = {
        userHash: r.user_hash,
        bucket: Number(r.bucket),
        businessId: r.business_id || null,
        atMs: Number(r.requested_ms),
      };
      set.add(e);
      fresh.push(e);
    }
    if (!fresh.length) return;
    const match = (userId: string) => {
      if (!fresh.some((e) => e.bucket === bucketOf(userId))) return [];
      const h = set.hash(userId);
      return fresh.filter((e) => e.userHash === h);
    };
    // Each holder of memory forgets at once, whichever of them is slower (the segments processor
    // waits for its batch in progress); a holder that fails is logged, the others still forget.
    const results = await Promise.allSettled(listeners.map(async (l) => l(match)));
    for (const r of results)
      if (r.status === 'rejected') log.error({ err: r.reason }, 'forgetting erased people failed');
    log.info({ erasures: fresh.length }, 'erased people are filtered and forgotten');
  }

  /**
   * Reads new erasures, in a read that starts after this call: a read already in flight may have
   * begun before the caller recorded its erasure, so it is followed by one more (one read at a
   * time; callers meanwhile share that next read).
   */
  function refresh(): Promise<void> {
    if (refreshing === undefined) {
      refreshing = load().finally(() => {
        refreshing = undefined;
      });
      return refreshing;
    }
    next ??= refreshing
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return refresh();
      });
    return next;
  }

  const view = (r: Row): ErasureRecord => ({
    id: r.id,
    business_id: r.business_id || null,
    requested_at: new Date(Number(r.requested_ms)).toISOString(),
    requested_by: r.requested_by,
    status: r.status,
    steps: JSON.parse(r.steps),
    updated_at: new Date(Number(r.updated_ms)).toISOString(),
  });

  async function write(r: Row) {
    await deps.store.client.insert({
      table,
      values: [
        {
          ...r,
          requested_at: new Date(Number(r.requested_ms)).toISOString(),
          updated_at: new Date(Number(r.updated_ms)).toISOString(),
        },
      ],
      format: 'JSONEachRow',
    });
  }

  return {
    set,
    refresh,
    /** Registers in-memory state to forget erased people (called for erasures read from now on). */
    onErased(l: ForgetListener) {
      listeners.push(l);
    },
    async start(refreshMs = deps.refreshMs ?? 1000) {
      await refresh();
      timer = setInterval(() => {
        refresh().catch((err) => log.warn({ err }, 'reading erasures failed; retrying'));
      }, refreshMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
    /** Records an erasure (filters apply from here on) and returns its row, to update as it goes. */
    async begin(userId: string, businessId: string | null, by: string, steps: ErasureStep[]) {
      const now = Date.now();
      const r: Row = {
        id: randomUUID(),
        user_hash: set.hash(userId),
        bucket: bucketOf(userId),
        business_id: businessId ?? '',
        requested_ms: now,
        requested_by: by,
        status: 'running',
        steps: JSON.stringify(steps),
        updated_ms: now,
        version: 1,
      };
      await write(r);
      return r;
    },
    async update(r: Row, status: ErasureRecord['status'], steps: ErasureStep[]) {
      Object.assign(r, {
        status,
        steps: JSON.stringify(steps),
        updated_ms: Date.now(),
        version: Number(r.version) + 1,
      });
      await write(r);
    },
    async get(id: string): Promise<ErasureRecord | undefined> {
      const [r] = await rows('WHERE id = {id:String}', { id });
      return r && view(r);
    },
    view,
  };
}
export type Erasures = ReturnType<typeof createErasures>;
