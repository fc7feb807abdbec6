import { randomBytes } from 'node:crypto';
import type { Store } from '../store/client.ts';
import { type Role, hashKey, keyId } from './auth.ts';

// Keys made through the keys API, in the api_keys table. Only the SHA-256 of a secret is kept;
// a key's id is the first 16 hex digits of that hash (its fingerprint), so every key, configured
// or stored, can be named without its secret. Each change is a new row for the same hash
// (ReplacingMergeTree keeps the last one).

export type KeyRecord = {
  id: string;
  name: string;
  roles: Role[];
  businesses: string[];
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked: boolean;
};

type Row = Omit<KeyRecord, 'revoked' | 'created_at' | 'expires_at'> & {
  key_hash: string;
  created_ms: number | string;
  expires_ms: number | string | null;
  revoked: number;
};

const COLUMNS = `key_hash, id, name, roles, businesses, created_by, revoked,
  toUnixTimestamp64Milli(created_at) AS created_ms, toUnixTimestamp64Milli(expires_at) AS expires_ms`;

const iso = (ms: number | string | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function createKeyStore(store: Store) {
  const table = `${store.database}.api_keys`;

  async function rows(where: string, params: Record<string, unknown> = {}) {
    return store.rows<Row>({
      query: `SELECT ${COLUMNS} FROM ${table} FINAL ${where} ORDER BY created_ms, id`,
      query_params: params,
    });
  }

  async function write(r: Row) {
    await store.client.insert({
      table,
      values: [
        {
          key_hash: r.key_hash,
          id: r.id,
          name: r.name,
          role: r.roles[0],
          roles: r.roles,
          businesses: r.businesses,
          created_by: r.created_by,
          revoked: r.revoked,
          created_at: new Date(Number(r.created_ms)).toISOString(),
          expires_at: r.expires_ms === null ? null : new Date(Number(r.expires_ms)).toISOString(),
        },
      ],
      format: 'JSONEachRow',
    });
  }

  const view = (r: Row): KeyRecord => ({
    id: r.id,
    name: r.name,
    roles: r.roles,
    businesses: r.businesses,
    created_at: new Date(Number(r.created_ms)).toISOString(),
    created_by: r.created_by,
    expires_at: iso(r.expires_ms),
    revoked: r.revoked === 1,
  });

  async function get(id: string) {
    const [r] = await rows('WHERE id = {id:String} AND revoked = 0', { id });
    return r;
  }

  return {
    /** Makes a key; the secret is returned here and never again. */
    async create(input: { name: string; roles: Role[]; businesses?: string[]; createdBy: string }) {
      const secret = `pk_${randomBytes(24).toString('base64url')}`;
      const h = hashKey(secret);
      const row: Row = {
        key_hash: h,
        id: keyId(h),
        name: input.name,
        roles: input.roles,
        businesses: input.businesses ?? [],
        created_by: input.createdBy,
        revoked: 0,
        created_ms: Date.now(),
        expires_ms: null,
      };
      await write(row);
      return { key: secret, record: view(row) };
    },
    /** Keys in force (not revoked, not expired), without secrets. */
    async list() {
      return (await rows('WHERE revoked = 0 AND (expires_at IS NULL OR expires_at > now64(3))')).map(view);
    },
    async revoke(id: string) {
      const r = await get(id);
      if (!r) return undefined;
      await write({ ...r, revoked: 1 });
      return view(r);
    },
    /** A new secret with the same name, roles and businesses; the old one stays valid for overlapMs. */
    async rotate(id: string, overlapMs: number, by: string) {
      const r = await get(id);
      if (!r) return undefined;
      const expires = Date.now() + overlapMs;
      if (r.expires_ms === null || Number(r.expires_ms) > expires) await write({ ...r, expires_ms: expires });
      const made = await this.create({
        name: r.name,
        roles: r.roles,
        businesses: r.businesses,
        createdBy: by,
      });
      return { ...made, old: { ...view(r), expires_at: iso(expires) } };
    },
  };
}
export type KeyStore = ReturnType<typeof createKeyStore>;
