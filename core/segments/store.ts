import { randomUUID } from 'node:crypto';
import type { Store } from '../store/client.ts';
import { type ListOptions, buildVersionedGetQuery, buildVersionedListQuery } from '../store/versioned.ts';
import type { Rule } from './rule.ts';

// Segment definitions in the segments table. Every write is a new version of the row; reads use
// FINAL, so the highest version wins. Deletes are tombstones the segments processor can see.

export type SegmentRecord = {
  id: string;
  name: string;
  /** null: the segment spans every business. */
  business_id: string | null;
  rule: Rule;
  version: number;
  created_at: string;
  updated_at: string;
  deleted: boolean;
};

type Row = {
  id: string;
  name: string;
  business_id: string;
  rule: string;
  version: number | string;
  created_ms: number | string;
  updated_ms: number | string;
  deleted: number;
};

const fromRow = (r: Row): SegmentRecord => ({
  id: r.id,
  name: r.name,
  business_id: r.business_id === '' ? null : r.business_id,
  rule: JSON.parse(r.rule) as Rule,
  version: Number(r.version),
  created_at: new Date(Number(r.created_ms)).toISOString(),
  updated_at: new Date(Number(r.updated_ms)).toISOString(),
  deleted: r.deleted === 1,
});

const COLUMNS = `id, name, business_id, rule, version, toUnixTimestamp64Milli(created_at) AS created_ms, toUnixTimestamp64Milli(updated_at) AS updated_ms, deleted`;

export function createSegmentStore(store: Store) {
  const table = `${store.database}.segments`;

  async function write(s: SegmentRecord) {
    await store.client.insert({
      table,
      values: [
        {
          id: s.id,
          name: s.name,
          business_id: s.business_id ?? '',
          rule: JSON.stringify(s.rule),
          version: s.version,
          created_at: s.created_at,
          updated_at: s.updated_at,
          deleted: s.deleted ? 1 : 0,
        },
      ],
      format: 'JSONEachRow',
    });
    return s;
  }

  return {
    /** The latest version of a segment, tombstones included. */
    async get(id: string): Promise<SegmentRecord | undefined> {
      const [row] = await store.rows<Row>(buildVersionedGetQuery(table, COLUMNS, id));
      return row ? fromRow(row) : undefined;
    },

    /** Latest versions of every segment (tombstones included), optionally for some businesses. */
    async list(opts: ListOptions = {}): Promise<SegmentRecord[]> {
      return (await store.rows<Row>(buildVersionedListQuery(table, COLUMNS, opts))).map(fromRow);
    },

    async create(
      input: { name: string; business_id: string | null; rule: Rule },
      nowMs = Date.now(),
    ): Promise<SegmentRecord> {
      const at = new Date(nowMs).toISOString();
      return write({
        id: `seg_${randomUUID()}`,
        ...input,
        version: 1,
        created_at: at,
        updated_at: at,
        deleted: false,
      });
    },

    async update(
      prev: SegmentRecord,
      input: { name: string; business_id: string | null; rule: Rule },
      nowMs = Date.now(),
    ) {
      return write({
        ...prev,
        ...input,
        version: prev.version + 1,
        updated_at: new Date(nowMs).toISOString(),
        deleted: false,
      });
    },

    async remove(prev: SegmentRecord, nowMs = Date.now()) {
      return write({
        ...prev,
        version: prev.version + 1,
        updated_at: new Date(nowMs).toISOString(),
        deleted: true,
      });
    },
  };
}

export type SegmentStore = ReturnType<typeof createSegmentStore>;
