import { expect } from 'vitest';
import { type Running, startParley } from '../../bin/server.ts';
import type { Config } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { waitFor } from './process.ts';

// Erasure of a person, end to end on one process (either bus): after DELETE /v1/users/{id}
// nothing of them is left in any table, in the events API, in segment members, in reports or in
// the decision engine's memory, and a restart that replays the whole bus brings nothing back.

export const ERASED = 'u_erase_me_51c0';
const KEPT = 'u_keep_22';

const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
const ev = (id: string, type: string, user: string, business: string, msAgo: number, props = {}) => ({
  event_id: `${id}-${user}-${business}`,
  type,
  occurred_at: at(msAgo),
  business_id: business,
  user_id: user,
  channel: 'whatsapp',
  props,
});

function events() {
  const out = [];
  for (const user of [ERASED, KEPT])
    for (const business of ['b1', 'b2'])
      out.push(
        ev('m1', 'message.received', user, business, 60_000),
        ev('m2', 'message.received', user, business, 50_000),
        ev('s1', 'sponsored.clicked', user, business, 40_000, { campaign_id: 'c1', decision_id: 'd1' }),
        ev('o1', 'order.placed', user, business, 30_000, { order_id: 'o1', value: 20 }),
      );
  return out;
}

// biome-ignore lint/suspicious/noExplicitAny: answers of several shapes, checked by the assertions
export type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;
export const apiOf =
  (p: Running, key: string): Api =>
  async (method, path, body) => {
    const res = await fetch(`${p.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

/** Every row of every table of Parley's database, as text. */
async function everyTable(p: Running) {
  const db = p.store.database;
  const tables = await (
    await p.store.client.query({
      query: `SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'`,
      query_params: { db },
      format: 'JSONEachRow',
    })
  ).json<{ name: string }>();
  let text = '';
  for (const { name } of tables)
    text += JSON.stringify(
      await (
        await p.store.client.query({ query: `SELECT * FROM ${db}.${name}`, format: 'JSONEachRow' })
      ).json(),
    );
  return { tables: tables.map((t) => t.name), text };
}

async function views(api: Api, segmentId: string) {
  const events = (await api('GET', `/v1/events?user_id=${ERASED}&limit=100`)).body.events;
  const members = (await api('GET', `/v1/segments/${segmentId}/members`)).body.members.map(
    (m: { user_id: string }) => m.user_id,
  );
  const funnel = (
    await api('POST', '/v1/reports/funnel', {
      steps: [{ type: 'message.received' }, { type: 'order.placed' }],
      window_seconds: 3600,
      from: at(3600_000),
      to: at(-60_000),
    })
  ).body;
  const credits = (
    await api('POST', '/v1/reports/attribution', { model: 'last_touch', from: at(3600_000), to: at(-60_000) })
  ).body;
  const engineUsers = (await api('GET', '/v1/decisions/ready')).body.users;
  return { events, members, funnel, credits, engineUsers };
}

export async function runErasureScenario(opts: {
  config: Config;
  key: string;
  /** Makes every consumer group start again from the beginning of the bus (Parley stopped). */
  resetGroups(): Promise<void>;
}) {
  const start = () => startParley(opts.config, { logger: createLogger({ level: 'silent' }), out: () => {} });
  let p = await start();
  try {
    let api = apiOf(p, opts.key);
    expect((await api('POST', '/v1/events', events())).body).toEqual({ accepted: 16, rejected: [] });
    const seg = (
      await api('POST', '/v1/segments', {
        name: 'talked to b1',
        business_id: 'b1',
        rule: { performed: 'message.received' },
      })
    ).body;
    const before = await waitFor('events, members, credits and the engine to hold both people', async () => {
      const v = await views(api, seg.id);
      return (
        v.events.length === 8 &&
        v.members.length === 2 &&
        v.credits.rows?.[0]?.conversions === 4 &&
        v.engineUsers === 2 &&
        v
      );
    });
    expect(before.funnel.steps.map((s: { users: number }) => s.users)).toEqual([2, 2]);
    expect((await everyTable(p)).text).toContain(ERASED);

    // A business-scoped erasure of the other person takes only that business's rows.
    const scoped = await api('DELETE', `/v1/users/${KEPT}?business_id=b2`);
    expect(scoped.status).toBe(202);
    const gone = await api('DELETE', `/v1/users/${ERASED}`);
    expect(gone.status).toBe(202);
    expect(JSON.stringify(gone.body)).not.toContain(ERASED);
    for (const id of [scoped.body.id, gone.body.id])
      await waitFor(
        `erasure ${id} done`,
        async () => (await api('GET', `/v1/erasures/${id}`)).body.status === 'done',
        20_000,
      );
    const progress = (await api('GET', `/v1/erasures/${gone.body.id}`)).body;
    expect(progress.steps.every((s: { status: string }) => s.status === 'done')).toBe(true);
    expect(progress.steps[2].rows.events).toBe(8);

    const check = async () => {
      const all = await everyTable(p);
      expect(all.tables).toEqual(
        expect.arrayContaining([
          'events',
          'segment_membership',
          'attribution_credits',
          'attribution_touches',
        ]),
      );
      expect(all.text).not.toContain(ERASED);
      const v = await views(api, seg.id);
      expect(v.events).toEqual([]);
      expect(v.members).toEqual([KEPT]);
      expect(v.funnel.steps.map((s: { users: number }) => s.users)).toEqual([1, 1]);
      const kept = (await api('GET', `/v1/events?user_id=${KEPT}&limit=100`)).body.events;
      expect(kept.map((e: { business_id: string }) => e.business_id).sort()).toEqual([
        'b1',
        'b1',
        'b1',
        'b1',
      ]);
      return v;
    };
    await waitFor('the engine to forget', async () => (await views(api, seg.id)).engineUsers === 1, 10_000);
    await check();
    const audit = (await api('GET', '/v1/audit?action=user.erased')).body.entries;
    expect(audit.map((e: { target: string }) => e.target)).toEqual(expect.arrayContaining([gone.body.id]));

    // A restart that replays the whole bus into every consumer brings nothing back.
    await p.stop();
    await opts.resetGroups();
    p = await start();
    api = apiOf(p, opts.key);
    await waitFor(
      'the replay to be consumed',
      async () => {
        const lag = await p.bus.lag(
          `${opts.config.topics.prefix}parley-sink`,
          `${opts.config.topics.prefix}parley.events`,
        );
        const ready = await api('GET', '/v1/decisions/ready');
        return lag.every((l) => l.committed >= l.end) && ready.status === 200;
      },
      30_000,
    );
    await new Promise((r) => setTimeout(r, 1500)); // the segments and attribution processors too
    const after = await check();
    expect(after.engineUsers).toBe(1);

    // The person may come back: what the bus accepts after the erasure is theirs again.
    await api('POST', '/v1/events', [ev('m3', 'message.received', ERASED, 'b1', 1000)]);
    await waitFor(
      'a new event of the erased person to be stored',
      async () => (await views(api, seg.id)).events.length === 1,
    );
  } finally {
    await p.stop();
  }
}
