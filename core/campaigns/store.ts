import { randomUUID } from 'node:crypto';
import type { Store } from '../store/client.ts';
import { type ListOptions, buildVersionedGetQuery, buildVersionedListQuery } from '../store/versioned.ts';
import type { Campaign, CampaignInput } from './schema.ts';

// Campaigns in the campaigns table. Every write is a new version of the row; reads use FINAL, so
// the highest version wins. Deletes are tombstones.

type Row = {
  id: string;
  business_id: string;
  name: string;
  status: string;
  spec: string;
  version: number | string;
  created_ms: number | string;
  updated_ms: number | string;
  deleted: number;
};

type Spec = Omit<CampaignInput, 'business_id' | 'name' | 'status'>;

const fromRow = (r: Row): Campaign => ({
  ...(JSON.parse(r.spec) as Spec),
  id: r.id,
  business_id: r.business_id,
  name: r.name,
  status: r.status as Campaign['status'],
  version: Number(r.version),
  created_at: new Date(Number(r.created_ms)).toISOString(),
  updated_at: new Date(Number(r.updated_ms)).toISOString(),
  deleted: r.deleted === 1,
});

const COLUMNS = `id, business_id, name, status, spec, version, toUnixTimestamp64Milli(created_at) AS created_ms, toUnixTimestamp64Milli(updated_at) AS updated_ms, deleted`;

export function buildCampaignListQuery(db: string, opts: ListOptions = {}) {
  return buildVersionedListQuery(`${db}.campaigns`, COLUMNS, opts);
}

export function createCampaignStore(store: Store) {
  const table = `${store.database}.campaigns`;

  async function write(c: Campaign) {
    const { id, business_id, name, status, version, created_at, updated_at, deleted, ...spec } = c;
    await store.client.insert({
      table,
      values: [
        {
          id,
          business_id,
          name,
          status,
          spec: JSON.stringify(spec),
          version,
          created_at,
          updated_at,
          deleted: deleted ? 1 : 0,
        },
      ],
      format: 'JSONEachRow',
    });
    return c;
  }

  return {
    async get(id: string): Promise<Campaign | undefined> {
      const [row] = await store.rows<Row>(buildVersionedGetQuery(table, COLUMNS, id));
      return row ? fromRow(row) : undefined;
    },

    async list(opts: ListOptions = {}): Promise<Campaign[]> {
      return (await store.rows<Row>(buildCampaignListQuery(store.database, opts))).map(fromRow);
    },

    async create(input: CampaignInput, nowMs = Date.now()): Promise<Campaign> {
      const at = new Date(nowMs).toISOString();
      return write({
        ...input,
        id: `cmp_${randomUUID().replaceAll('-', '')}`,
        version: 1,
        created_at: at,
        updated_at: at,
        deleted: false,
      });
    },

    async update(prev: Campaign, input: CampaignInput, nowMs = Date.now()) {
      return write({
        ...input,
        id: prev.id,
        created_at: prev.created_at,
        version: prev.version + 1,
        updated_at: new Date(nowMs).toISOString(),
        deleted: false,
      });
    },

    async remove(prev: Campaign, nowMs = Date.now()) {
      return write({
        ...prev,
        version: prev.version + 1,
        updated_at: new Date(nowMs).toISOString(),
        deleted: true,
      });
    },
  };
}

export type CampaignStore = ReturnType<typeof createCampaignStore>;
