import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { createStore, type Store } from '../store/client.ts';
import { migrate } from '../store/migrations.ts';
import { type RefEvent, referenceMembers } from './reference.ts';
import { compileRule, type Rule } from './rule.ts';
import {
  buildSegmentMembersQuery,
  buildSegmentSizeQuery,
  buildSegmentStateQuery,
  SAMPLE_SIZE,
} from './sql.ts';

const DB = 'parley';
const T = Date.parse('2026-03-10T12:00:00.000Z');

describe('segment SQL builders (pure)', () => {
  it('binds every value and groups once per user', () => {
    const rule = compileRule({
      all: [
        {
          performed: 'message.received',
          where: { channel: 'whatsapp', 'props.keywords': 'haircut' },
          count: { gte: 3 },
          within_seconds: 3600,
        },
        { not: { performed: 'appointment.booked', where: { 'props.value': { gte: 10 } } } },
      ],
    });
    const { query, query_params } = buildSegmentSizeQuery(DB, rule, { asOfMs: T, businessId: "b'1" });
    expect(query).toContain('FROM parley.events FINAL');
    expect(query.match(/GROUP BY user_id/g)).toHaveLength(1);
    expect(query).toContain('HAVING ((c0 >= {l0_gte:UInt64}) AND (NOT (c1 >= {l1_gte:UInt64})))');
    expect(query).not.toContain("b'1");
    expect(query).not.toContain('haircut');
    expect(query_params).toMatchObject({
      as_of: T,
      business_id: "b'1",
      l0_type: 'message.received',
      l0_c0_s: ['whatsapp'],
      l0_c1_k: 'keywords',
      l0_c1_s: ['haircut'],
      l0_gte: 3,
      l0_from: T - 3_600_000,
      l1_type: 'appointment.booked',
      l1_c0_k: 'value',
      l1_c0_gte: 10,
      l1_gte: 1,
    });
  });

  it('pages members by user_id and leaves out business_id for global segments', () => {
    const rule = compileRule({ performed: 'optin', count: { lte: 2 } });
    const { query, query_params } = buildSegmentMembersQuery(DB, rule, {
      asOfMs: T,
      limit: 50,
      after: 'u_9',
    });
    expect(query).toContain('user_id > {after:String}');
    expect(query).toMatch(/ORDER BY user_id\nLIMIT \{limit:UInt32\}$/);
    expect(query).not.toContain('business_id');
    expect(query).toContain('HAVING (c0 <= {l0_lte:UInt64})');
    expect(query_params).toEqual({ as_of: T, after: 'u_9', limit: 50, l0_type: 'optin', l0_lte: 2 });
  });

  it('builds the streaming state query with one bit per leaf', () => {
    const rule = compileRule({ any: [{ performed: 'optin' }, { performed: 'optout', within_seconds: 60 }] });
    const { query, query_params } = buildSegmentStateQuery(DB, rule, { nowMs: T, businessId: 'b1' });
    expect(query).toContain('* 1 + toUInt32(');
    expect(query).toContain('* 2 AS mask');
    expect(query_params).toMatchObject({ business_id: 'b1', l1_from: T - 120_000 }); // kept for two windows;
  });
});

let store: Store;
let dir: string;
let n = 0;

const ev = (user: string, type: string, ms: number, extra: Partial<RefEvent> = {}): RefEvent => ({
  event_id: `e${++n}`,
  type: type as RefEvent['type'],
  occurred_at: ms,
  business_id: 'b1',
  user_id: user,
  channel: 'whatsapp',
  props: {},
  ...extra,
});

async function insert(events: RefEvent[]) {
  const values = events.map((e) => ({
    event_id: e.event_id,
    type: e.type,
    occurred_at: new Date(e.occurred_at).toISOString(),
    business_id: e.business_id,
    user_id: e.user_id,
    thread_id: `t_${e.user_id}`,
    channel: e.channel,
    props: JSON.stringify(e.props),
    ingested_at: new Date().toISOString(),
  }));
  await store.client.insert({ table: `${DB}.events`, values, format: 'JSONEachRow' });
}

async function sqlMembers(rule: Rule, asOfMs: number, businessId?: string) {
  const rs = await store.client.query({
    ...buildSegmentMembersQuery(DB, compileRule(rule), { asOfMs, businessId }),
    format: 'JSONEachRow',
  });
  return (await rs.json<{ user_id: string }>()).map((r) => r.user_id);
}

const H = 3_600_000;
const history: RefEvent[] = [];

describe('segment SQL on the embedded engine', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-seg-sql-'));
    store = await createStore({ dataDir: dir, clickhouse: { database: DB } });
    await migrate(store, createLogger({ level: 'silent' }));
    const dupe = ev('u_dup', 'message.received', T - H);
    history.push(
      ev('u1', 'message.received', T - 2 * H, { props: { keywords: ['haircut', 'beard'], text_length: 12 } }),
      ev('u1', 'message.received', T - H, { props: { keywords: ['beard'] } }),
      ev('u1', 'order.placed', T - H, { props: { value: 25.5 } }),
      ev('u2', 'message.received', T, { channel: 'sms', props: { has_attachment: true } }), // exactly at T: counts
      ev('u2', 'message.received', T + 1, { channel: 'sms' }), // after T: not in scope
      ev('u3', 'message.received', T - 3 * H), // exactly at T - W for a 3h window: outside
      ev('u3', 'order.placed', T - H, { props: { value: 5 } }),
      ev('u4', 'optin', T - H, { business_id: 'b2' }),
      ev('u5', 'order.placed', T - H, { props: { value: '25.5' } }), // a string is not the number
      ev('u6', 'message.received', T + 5 * H), // only in the future: not in the universe at T
      dupe,
      { ...dupe },
      { ...dupe },
    );
    await insert(history);
  });
  afterAll(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cases: [string, Rule, string | undefined][] = [
    ['performed at all', { performed: 'message.received' }, 'b1'],
    ['a duplicated event counts once', { performed: 'message.received', count: { gte: 2 } }, 'b1'],
    [
      'keyword in an array prop',
      { performed: 'message.received', where: { 'props.keywords': 'haircut' } },
      'b1',
    ],
    [
      'in list over an array prop',
      {
        performed: 'message.received',
        where: { 'props.keywords': { in: ['beard', 'x'] } },
        count: { gte: 2 },
      },
      'b1',
    ],
    ['boolean prop', { performed: 'message.received', where: { 'props.has_attachment': true } }, 'b1'],
    ['channel', { performed: 'message.received', where: { channel: { in: ['sms'] } } }, 'b1'],
    ['number range', { performed: 'order.placed', where: { 'props.value': { gt: 25, lte: 25.5 } } }, 'b1'],
    ['number equality ignores strings', { performed: 'order.placed', where: { 'props.value': 25.5 } }, 'b1'],
    [
      'string equality ignores numbers',
      { performed: 'order.placed', where: { 'props.value': '25.5' } },
      'b1',
    ],
    ['window edge T - W is outside', { performed: 'message.received', within_seconds: 3 * 3600 }, 'b1'],
    ['not is over the universe', { not: { performed: 'message.received' } }, 'b1'],
    ['global scope', { not: { performed: 'message.received' } }, undefined],
    [
      'count bounds with zero',
      {
        all: [
          { performed: 'message.received', count: { lte: 1 } },
          { any: [{ performed: 'order.placed' }, { performed: 'optin' }] },
        ],
      },
      undefined,
    ],
    [
      'empty props match nothing',
      { performed: 'message.received', where: { 'props.missing': { in: ['', 0, false] } } },
      'b1',
    ],
  ];

  for (const [name, rule, businessId] of cases) {
    it(`agrees with the reference: ${name}`, async () => {
      const want = referenceMembers(compileRule(rule), history, T, businessId);
      expect(await sqlMembers(rule, T, businessId)).toEqual(want);
    });
  }

  it('pins a few expected answers so the reference itself is checked', async () => {
    expect(await sqlMembers({ performed: 'message.received', within_seconds: 3 * 3600 }, T, 'b1')).toEqual([
      'u1',
      'u2',
      'u_dup',
    ]);
    expect(await sqlMembers({ not: { performed: 'message.received' } }, T, 'b1')).toEqual(['u5']);
    expect(await sqlMembers({ performed: 'message.received', count: { gte: 2 } }, T, 'b1')).toEqual(['u1']);
    expect(await sqlMembers({ performed: 'order.placed', where: { 'props.value': 25.5 } }, T, 'b1')).toEqual([
      'u1',
    ]);
  });

  it('returns size, a sample, and keyset pages', async () => {
    const rule = compileRule({ performed: 'message.received' });
    const rs = await store.client.query({
      ...buildSegmentSizeQuery(DB, rule, { asOfMs: T, businessId: 'b1' }),
      format: 'JSONEachRow',
    });
    const [{ size, sample }] = await rs.json<{ size: number; sample: string[] }>();
    expect(Number(size)).toBe(4);
    expect(sample.sort()).toEqual(['u1', 'u2', 'u3', 'u_dup']);
    expect(SAMPLE_SIZE).toBeGreaterThan(4);
    const page = async (after?: string) =>
      (
        await (
          await store.client.query({
            ...buildSegmentMembersQuery(DB, rule, { asOfMs: T, businessId: 'b1', limit: 3, after }),
            format: 'JSONEachRow',
          })
        ).json<{ user_id: string }>()
      ).map((r) => r.user_id);
    const first = await page();
    expect(first).toEqual(['u1', 'u2', 'u3']);
    expect(await page(first.at(-1))).toEqual(['u_dup']);
  });

  it('state query returns the universe and leaf masks', async () => {
    const rule = compileRule({
      any: [{ performed: 'order.placed' }, { performed: 'message.received', within_seconds: 1.5 * 3600 }],
    });
    const rs = await store.client.query({
      ...buildSegmentStateQuery(DB, rule, { nowMs: T, businessId: 'b1' }),
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ user_id: string; first_ms: number; events: [string, number, number][] }>();
    const u3 = rows.find((r) => r.user_id === 'u3');
    expect(Number(u3?.first_ms)).toBe(T - 3 * H);
    expect(u3?.events.map((e) => Number(e[2]))).toEqual([1]); // the 3h-old message is two 1.5h windows old: out
    const u6 = rows.find((r) => r.user_id === 'u6');
    expect(u6?.events.map((e) => Number(e[2]))).toEqual([2]); // future events are kept
  });
});
