import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyConfig } from '../config.ts';
import { ParleyError } from '../errors.ts';
import type { Store } from '../store/client.ts';

export const ROLES = ['ingest', 'marketer', 'adserver', 'analyst', 'admin'] as const;
export type Role = (typeof ROLES)[number];
/** `role` is the key's first role, or admin when it holds admin; `roles` all it holds. */
export type Principal = { role: Role; roles: Role[]; businesses?: string[]; keyHash: string };
type Grant = { role: Role; roles: Role[]; businesses?: string[] };
const grant = (roles: Role[], businesses?: string[]): Grant => ({
  role: roles.includes('admin') ? 'admin' : roles[0],
  roles,
  businesses,
});

const hash = (key: string) => createHash('sha256').update(key).digest('hex');

export type Auth = {
  /** The principal for an Authorization header; throws 401 when missing or unknown. */
  authenticate(header: string | undefined): Promise<Principal>;
  /** Throws 403 unless the principal has one of the roles (admin has them all). */
  authorize(p: Principal, roles: readonly Role[]): void;
  /** Throws 403 when the principal is limited to businesses and this one is not among them. */
  checkBusiness(p: Principal, businessId: string | undefined): void;
  /** The principal of a key known by its hash (a dashboards session), if it still exists. */
  byHash(keyHash: string): Promise<Principal | undefined>;
};

/**
 * Keys from config are held in memory by hash; with none configured, keys live hashed in the
 * store's api_keys table (the first-start admin key is made there).
 */
export function createAuth(opts: { keys?: ApiKeyConfig[]; store?: Store; refreshMs?: number }): Auth {
  const fixed = new Map(
    (opts.keys ?? []).map((k) => [hash(k.key), grant(k.roles ?? [k.role!], k.businesses)]),
  );
  let stored = new Map<string, Grant>();
  let loadedAt = 0;
  const refreshMs = opts.refreshMs ?? 30_000;
  // The hash of each recently seen raw key, so a busy client's key is hashed once, not per
  // request; lookups still go through the key tables, so revocation applies as before.
  const hashes = new Map<string, string>();
  const hashOf = (key: string) => {
    let h = hashes.get(key);
    if (h === undefined) {
      if (hashes.size >= 1024) hashes.clear();
      h = hash(key);
      hashes.set(key, h);
    }
    return h;
  };

  async function lookup(h: string) {
    const f = fixed.get(h);
    if (f || opts.keys?.length) return f;
    if (!opts.store) return undefined;
    if (!stored.has(h) && Date.now() - loadedAt > 1000) loadedAt = 0; // a new key: re-read, at most once a second
    if (Date.now() - loadedAt > refreshMs) {
      stored = await loadStoredKeys(opts.store);
      loadedAt = Date.now();
    }
    return stored.get(h);
  }

  return {
    async authenticate(header) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
      if (!m)
        throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', 'Send an API key as "Authorization: Bearer <key>"');
      const h = hashOf(m[1]);
      const found = await lookup(h);
      if (!found) throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', 'Unknown API key');
      return { ...found, keyHash: h };
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
      return found && { ...found, keyHash: h };
    },
    checkBusiness(p, businessId) {
      if (!p.businesses || p.role === 'admin') return;
      if (businessId === undefined || !p.businesses.includes(businessId)) {
        throw new ParleyError(
          'PARLEY_ERR_FORBIDDEN',
          `This key is limited to businesses ${p.businesses.join(', ')}; pass one of them as business_id`,
        );
      }
    },
  };
}

async function loadStoredKeys(store: Store) {
  const rs = await store.client.query({
    query: `SELECT key_hash, role, businesses FROM ${store.database}.api_keys FINAL WHERE revoked = 0`,
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ key_hash: string; role: Role; businesses: string[] }>();
  return new Map(
    rows.map((r) => [r.key_hash, grant([r.role], r.businesses.length ? r.businesses : undefined)]),
  );
}

/** With no keys configured and none stored, makes an admin key, stores its hash, and returns it once. */
export async function ensureFirstAdminKey(store: Store): Promise<string | undefined> {
  const rs = await store.client.query({
    query: `SELECT count() AS n FROM ${store.database}.api_keys FINAL WHERE revoked = 0`,
    format: 'JSONEachRow',
  });
  const [{ n }] = await rs.json<{ n: number | string }>();
  if (Number(n) > 0) return undefined;
  const key = `pk_admin_${randomBytes(24).toString('base64url')}`;
  await store.client.insert({
    table: `${store.database}.api_keys`,
    values: [{ key_hash: hash(key), role: 'admin', businesses: [], created_at: new Date().toISOString() }],
    format: 'JSONEachRow',
  });
  return key;
}

export const safeEqual = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};
