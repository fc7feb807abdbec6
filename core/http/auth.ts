import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyConfig } from '../config.ts';
import { ParleyError } from '../errors.ts';
import { memoized } from '../maps.ts';
import type { Store } from '../store/client.ts';

export const ROLES = ['ingest', 'marketer', 'adserver', 'analyst', 'metrics', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export type Principal = { roles: Role[]; businesses?: string[]; keyHash: string };

/** The businesses a principal is limited to; undefined when it may see every business. */
export const limitedTo = (p: Principal) =>
  p.businesses && !p.roles.includes('admin') ? p.businesses : undefined;

/** Whether a principal may see data of this business (null: data that spans every business). */
export function canSee(p: Principal, businessId: string | null | undefined) {
  const only = limitedTo(p);
  return !only || (businessId != null && only.includes(businessId));
}

/**
 * For a read: the businesses the key is limited to (undefined: every business), after checking
 * that it may see the business_id it asked for, if any (403 otherwise).
 */
export function readScope(p: Principal, businessId: string | undefined): string[] | undefined {
  if (businessId !== undefined) checkBusiness(p, businessId);
  return limitedTo(p);
}

/**
 * A stored record the key may see, else NOT_FOUND: what a key may not see is answered as what does
 * not exist (a deleted record, one of another business, a global one for a key limited to some).
 */
export function visible<T extends { business_id: string | null; deleted?: boolean }>(
  p: Principal,
  record: T | undefined,
  notFound: string,
): T {
  if (!record || record.deleted || !canSee(p, record.business_id))
    throw new ParleyError('PARLEY_ERR_NOT_FOUND', notFound);
  return record;
}

/**
 * Throws 403 when the key is limited to businesses and this one is not among them; undefined or
 * null (something spanning every business) is refused to such a key too.
 */
export function checkBusiness(p: Principal, businessId: string | null | undefined): void {
  const only = limitedTo(p);
  if (only && (businessId == null || !only.includes(businessId))) {
    throw new ParleyError(
      'PARLEY_ERR_FORBIDDEN',
      `This key is limited to businesses ${only.join(', ')}; pass one of them as business_id`,
    );
  }
}

export const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');
/** A key's id: the first 16 hex digits of its hash (a fingerprint that reveals nothing usable). */
export const keyId = (keyHash: string) => keyHash.slice(0, 16);

type KeyGrant = { roles: Role[]; businesses?: string[] };
/** A configured key: ApiKeyConfig, or the same with one `role`. */
type KeyInput = Omit<ApiKeyConfig, 'roles'> & { roles?: Role[]; role?: Role };

export type Auth = {
  /** The principal for an Authorization header; throws 401 when missing or unknown. */
  authenticate(header: string | undefined): Promise<Principal>;
  /**
   * The principal of an Authorization header authenticated recently, when that still holds
   * without reading the stored keys again (the same answer authenticate would give, with no
   * work); undefined otherwise, and authenticate decides.
   */
  cached(header: string | undefined): Principal | undefined;
  /** Throws 403 unless the principal has one of the roles (admin has them all). */
  authorize(p: Principal, roles: readonly Role[]): void;
  /** Throws 403 when the principal is limited to businesses and this one is not among them. */
  checkBusiness(p: Principal, businessId: string | null | undefined): void;
  /** The principal of a key known by its hash (a dashboards session), if it still exists. */
  byHash(keyHash: string): Promise<Principal | undefined>;
  /** Re-reads the stored keys now (after a key was made, revoked or rotated here). */
  reload(): Promise<void>;
};

/**
 * Keys from config are held in memory by hash; keys made through the keys API (and the
 * first-start admin key) live hashed in the store's api_keys table. Both are in force together.
 */
export function createAuth(opts: { keys?: KeyInput[]; store?: Store; refreshMs?: number }): Auth {
  const fixed = new Map<string, KeyGrant>(
    (opts.keys ?? []).map((k) => [
      hashKey(k.key),
      { roles: k.roles ?? (k.role ? [k.role] : []), businesses: k.businesses },
    ]),
  );
  let stored = new Map<string, KeyGrant & { expiresAt?: number }>();
  let loadedAt = 0;
  const refreshMs = opts.refreshMs ?? 30_000;
  // The hash of each recently seen raw key, so a busy client's key is hashed once, not per
  // request; lookups still go through the key tables, so revocation applies as before.
  const hashOf = memoized(1024, hashKey);

  // Principals by Authorization header, as authenticate last gave them, with the key table they
  // came from: a configured key's stays good; a stored key's only while that table is current.
  type Seen = { p: Principal; from: typeof stored | null; expiresAt?: number };
  const seen = new Map<string, Seen>();
  const remember = (header: string, p: Principal, from: typeof stored | null, expiresAt?: number) => {
    if (seen.size >= 1024) seen.clear();
    seen.set(header, { p, from, expiresAt });
  };

  async function reload() {
    if (!opts.store) return;
    stored = await loadStoredKeys(opts.store);
    loadedAt = Date.now();
  }

  async function lookup(h: string): Promise<KeyGrant | undefined> {
    const f = fixed.get(h);
    if (f || !opts.store) return f;
    if (!stored.has(h) && Date.now() - loadedAt > 1000) loadedAt = 0; // a new key: re-read, at most once a second
    if (Date.now() - loadedAt > refreshMs) await reload();
    const s = stored.get(h);
    return s && (s.expiresAt === undefined || s.expiresAt > Date.now()) ? s : undefined;
  }

  return {
    async authenticate(header) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
      if (!m)
        throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', 'Send an API key as "Authorization: Bearer <key>"');
      const h = hashOf(m[1]);
      const found = await lookup(h);
      if (!found) throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', 'Unknown API key');
      const p: Principal = { roles: found.roles, businesses: found.businesses, keyHash: h };
      const fromStore = fixed.get(h) ? null : stored;
      remember(header as string, p, fromStore, (found as { expiresAt?: number }).expiresAt);
      return p;
    },
    cached(header) {
      const s = header === undefined ? undefined : seen.get(header);
      if (!s) return undefined;
      if (s.from === null) return s.p;
      const now = Date.now();
      if (s.from !== stored || now - loadedAt > refreshMs) return undefined;
      return s.expiresAt === undefined || s.expiresAt > now ? s.p : undefined;
    },
    authorize(p, roles) {
      if (p.roles.includes('admin') || p.roles.some((r) => roles.includes(r))) return;
      throw new ParleyError(
        'PARLEY_ERR_FORBIDDEN',
        `This needs a key with role ${roles.join(' or ')}; this key has role ${p.roles.join(', ')}`,
      );
    },
    async byHash(h) {
      const found = await lookup(h);
      return found && { roles: found.roles, businesses: found.businesses, keyHash: h };
    },
    checkBusiness,
    reload,
  };
}

async function loadStoredKeys(store: Store) {
  const rows = await store.rows<{
    key_hash: string;
    roles: Role[];
    businesses: string[];
    expires_ms: number | null;
  }>({
    query: `SELECT key_hash, roles, businesses, toUnixTimestamp64Milli(expires_at) AS expires_ms
            FROM ${store.database}.api_keys FINAL WHERE revoked = 0`,
  });
  return new Map(
    rows.map((r) => [
      r.key_hash,
      {
        roles: r.roles,
        businesses: r.businesses.length ? r.businesses : undefined,
        expiresAt: r.expires_ms === null ? undefined : Number(r.expires_ms),
      },
    ]),
  );
}

/** With no keys configured and none stored, makes an admin key, stores its hash, and returns it once. */
export async function ensureFirstAdminKey(store: Store): Promise<string | undefined> {
  const [{ n }] = await store.rows<{ n: number | string }>({
    query: `SELECT count() AS n FROM ${store.database}.api_keys FINAL WHERE revoked = 0`,
  });
  if (Number(n) > 0) return undefined;
  const key = `pk_admin_${randomBytes(24).toString('base64url')}`;
  await store.client.insert({
    table: `${store.database}.api_keys`,
    values: [
      {
        key_hash: hashKey(key),
        id: keyId(hashKey(key)),
        name: 'first-start admin key',
        role: 'admin',
        roles: ['admin'],
        businesses: [],
        created_at: new Date().toISOString(),
        created_by: 'parley',
      },
    ],
    format: 'JSONEachRow',
  });
  return key;
}

export const safeEqual = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};
