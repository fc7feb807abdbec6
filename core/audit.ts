import { randomUUID } from 'node:crypto';
import type { Store } from './store/client.ts';

// The audit log: who (a key's id), what (an action on a target), when. Entries never hold a
// secret or a person's data.

export type AuditEntry = {
  at: string;
  id: string;
  actor: string;
  action: string;
  target: string;
  details: unknown;
};

export function buildAuditListQuery(db: string, opts: { limit: number; before?: string; action?: string }) {
  const where = [
    ...(opts.before ? ['at < parseDateTime64BestEffort({before:String}, 3)'] : []),
    ...(opts.action ? ['action = {action:String}'] : []),
  ];
  return {
    query: `SELECT toUnixTimestamp64Milli(at) AS at_ms, id, actor, action, target, details
            FROM ${db}.audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
            ORDER BY at DESC, id DESC LIMIT {limit:UInt32}`,
    query_params: {
      limit: opts.limit,
      ...(opts.before ? { before: opts.before } : {}),
      ...(opts.action ? { action: opts.action } : {}),
    },
  };
}

export function createAuditLog(store: Store) {
  return {
    async record(actor: string, action: string, target: string, details: Record<string, unknown> = {}) {
      await store.client.insert({
        table: `${store.database}.audit_log`,
        values: [
          {
            at: new Date().toISOString(),
            id: randomUUID(),
            actor,
            action,
            target,
            details: JSON.stringify(details),
          },
        ],
        format: 'JSONEachRow',
      });
    },
    async list(opts: { limit: number; before?: string; action?: string }): Promise<AuditEntry[]> {
      const rows = await store.rows<{
        at_ms: number | string;
        id: string;
        actor: string;
        action: string;
        target: string;
        details: string;
      }>(buildAuditListQuery(store.database, opts));
      return rows.map((r) => ({
        at: new Date(Number(r.at_ms)).toISOString(),
        id: r.id,
        actor: r.actor,
        action: r.action,
        target: r.target,
        details: JSON.parse(r.details),
      }));
    },
  };
}
export type AuditLog = ReturnType<typeof createAuditLog>;
