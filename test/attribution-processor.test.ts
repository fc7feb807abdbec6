import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBus } from '../core/bus/local.ts';
import type { Bus } from '../core/bus/types.ts';
import { type EventBatch, EventFeed } from '../core/events/feed.ts';
import { EventMessage } from '../core/events/message.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import {
  type AttributionRow,
  attributionAnswer,
  attributionModelsAnswer,
  attributionModelsRequestSchema,
  attributionRequestSchema,
  buildAttributionModelsQuery,
  buildAttributionQuery,
} from '../core/reports/attribution.ts';
import { buildCampaignsQuery, campaignsQuerySchema } from '../core/reports/campaigns.ts';
import { buildStoredAttributionModelsQuery, buildStoredAttributionQuery } from '../core/reports/credits.ts';
import { MODELS, type Model } from '../core/reports/models.ts';
import type { RefEvent } from '../core/reports/reference.ts';
import type { Store } from '../core/store/client.ts';
import { createAttributionProcessor } from '../processors/attribution.ts';
import { runProcessors } from '../processors/runner.ts';
import { T0, ev, insertEvents, openTestStore, queryRows } from './reports-helpers.ts';
import { createPipeline } from '../processors/pipeline.ts';

let store: Store;
let close: () => Promise<void>;
const logger = createLogger({ level: 'silent' });
const metrics = createMetrics();
let deadBus: Bus;
beforeAll(async () => {
  ({ store, close } = await openTestStore());
  deadBus = await createLocalBus({ dir: await mkdtemp(join(tmpdir(), 'parley-attr-dlq-')), logger });
  await deadBus.ensureTopics([{ name: 'parley.events.dlq' }]);
});
afterAll(async () => {
  await deadBus.close();
  await close();
});
const pipeline = (bus: Bus = deadBus) =>
  createPipeline({ store, bus, logger, metrics, dlqTopic: 'parley.events.dlq' });

const H = 3_600_000;
const canonical = (e: RefEvent) => ({
  event_id: e.event_id,
  type: e.type,
  occurred_at: new Date(e.t).toISOString(),
  business_id: e.business_id,
  user_id: e.user_id,
  thread_id: `${e.business_id}:${e.user_id}`,
  channel: e.channel,
  props: e.props,
});
let offset = 0n;
const batchOf = (events: RefEvent[]): EventBatch => ({
  topic: 'parley.events',
  partition: 0,
  messages: events.map(
    (e) =>
      new EventMessage({
        topic: 'parley.events',
        partition: 0,
        offset: offset++,
        key: e.user_id,
        value: Buffer.from(JSON.stringify(canonical(e))),
        timestamp: Date.now(),
        headers: {},
      }),
  ),
});
const ctx = { heartbeat: async () => {}, signal: new AbortController().signal };

const r6 = (x: number) => +Number(x).toFixed(6);
const r6s = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, r6(v)]));
const round = (a: ReturnType<typeof attributionAnswer>) => ({
  ...a,
  rows: a.rows.map((x) => ({
    ...x,
    conversions: r6(x.conversions),
    value_by_currency: r6s(x.value_by_currency),
  })),
  unattributed: {
    conversions: r6(a.unattributed.conversions),
    value_by_currency: r6s(a.unattributed.value_by_currency),
  },
});
type ModelRow = AttributionRow & { model: Model };

/**
 * Both paths at the default windows for every model, for one business: each model alone, all
 * models in one statement (stored and computed), and the campaigns report's rows.
 */
async function bothPaths(business: string) {
  const from = new Date(T0 - 30 * 86_400_000).toISOString();
  const to = new Date(T0 + 30 * 86_400_000).toISOString();
  const out = [];
  for (const model of MODELS) {
    const r = attributionRequestSchema.parse({ model, from, to, business_id: business });
    const stored = round(
      attributionAnswer(
        model,
        await queryRows<AttributionRow>(store, buildStoredAttributionQuery(store.database, r)),
      ),
    );
    const sql = round(
      attributionAnswer(
        model,
        await queryRows<AttributionRow>(store, buildAttributionQuery(store.database, r)),
      ),
    );
    out.push({ stored, sql });
  }
  const all = attributionModelsRequestSchema.parse({ from, to, business_id: business });
  const together = async (q: { query: string; query_params: Record<string, unknown> }) =>
    attributionModelsAnswer(MODELS, await queryRows<ModelRow>(store, q)).models.map(round);
  const storedTogether = await together(buildStoredAttributionModelsQuery(store.database, all));
  const sqlTogether = await together(buildAttributionModelsQuery(store.database, all));
  [...out].forEach(({ sql }, i) => {
    out.push({ stored: storedTogether[i], sql });
    out.push({ stored: sqlTogether[i], sql });
  });
  {
    // The campaigns report by one model per history, in turn.
    const q = campaignsQuerySchema.parse({
      from,
      to,
      model: MODELS[biz % MODELS.length],
      business_id: business,
    });
    const rows = async (storedCredits: boolean) =>
      (
        await queryRows<Record<string, unknown>>(
          store,
          buildCampaignsQuery(store.database, q, undefined, { storedCredits }),
        )
      ).map((x) =>
        Object.fromEntries(Object.entries(x).map(([k, v]) => [k, typeof v === 'number' ? r6(v) : v])),
      );
    out.push({ stored: await rows(true), sql: await rows(false) });
  }
  return out;
}

let biz = 0;
describe('attribution processor', () => {
  it('re-credits a conversion when a late touchpoint arrives, and ignores duplicates', async () => {
    const b = `pb${++biz}`;
    const p = createAttributionProcessor({
      store,
      logger,
      metrics,
      topic: 'parley.events',
      pipeline: pipeline(),
    });
    const o = ev('order.placed', 'u1', 10 * H, { business_id: b, props: { value: 30 } });
    const view = ev('sponsored.served', 'u1', 9 * H, { business_id: b, props: { campaign_id: 'v' } });
    const click = ev('sponsored.clicked', 'u1', 2 * H, { business_id: b, props: { campaign_id: 'k' } });
    const all = [o, view, click];
    await insertEvents(store, all);
    const linear = async () => (await bothPaths(b))[2].stored;
    await p.handle(batchOf([o, o]), ctx);
    expect(await linear()).toMatchObject({
      rows: [],
      unattributed: { conversions: 1, value_by_currency: { XXX: 30 } },
    });
    await p.handle(batchOf([view]), ctx);
    expect(await linear()).toMatchObject({
      rows: [{ campaign_id: 'v', conversions: 1, value_by_currency: { XXX: 30 } }],
      unattributed: { conversions: 0, value_by_currency: {} },
    });
    await p.handle(batchOf([click, view, o]), ctx);
    expect(await linear()).toMatchObject({
      rows: [{ campaign_id: 'k', conversions: 1, value_by_currency: { XXX: 30 } }],
      unattributed: { conversions: 0 },
    });
    for (const { stored, sql } of await bothPaths(b)) expect(stored).toEqual(sql);
  });

  it('reads the store only for batches whose users may have touchpoints, once its filter is read', async () => {
    const b = `pb${++biz}`;
    // A touchpoint stored before this processor started (by an earlier one).
    const before = ev('sponsored.clicked', 'u1', H, { business_id: b, props: { campaign_id: 'k' } });
    const o1 = ev('order.placed', 'u1', 2 * H, { business_id: b, props: { value: 10 } });
    const o2 = ev('order.placed', 'u2', 2 * H, { business_id: b, props: { value: 20 } });
    const later = ev('sponsored.served', 'u3', 3 * H, { business_id: b, props: { campaign_id: 'v' } });
    const o3 = ev('order.placed', 'u3', 4 * H, { business_id: b, props: { value: 30 } });
    await insertEvents(store, [before, o1, o2, later, o3]);
    await createAttributionProcessor({
      store,
      logger,
      metrics,
      topic: 'parley.events',
      pipeline: pipeline(),
    }).handle(batchOf([before]), ctx);
    let reads = 0;
    const counting: Store = Object.assign(Object.create(store) as Store, {
      rows: (q: Parameters<Store['rows']>[0]) => {
        reads++;
        return store.rows(q);
      },
    });
    const p = createAttributionProcessor({
      store: counting,
      logger,
      metrics,
      topic: 'parley.events',
      pipeline: pipeline(),
    });
    // Until it is given partitions, every batch reads.
    await p.handle(batchOf([o2]), ctx);
    expect(reads).toBe(1);
    p.onAssign?.(new Map([['parley.events', [0]]]));
    expect(await p.touchFilter()).toBe(true);
    await p.handle(batchOf([o2]), ctx); // u2 has no touchpoint: nothing to read
    expect(reads).toBe(1);
    await p.handle(batchOf([o1]), ctx); // u1's touchpoint was stored before the start
    expect(reads).toBe(2);
    await p.handle(batchOf([later]), ctx); // a touchpoint always reads (conversions it changes)
    expect(reads).toBe(3);
    await p.handle(batchOf([o3]), ctx); // u3's touchpoint was stored by this processor
    expect(reads).toBe(4);
    const [, , linear] = await bothPaths(b);
    expect(linear.stored).toMatchObject({
      rows: [
        { campaign_id: 'k', conversions: 1, value_by_currency: { XXX: 10 } },
        { campaign_id: 'v', conversions: 1, value_by_currency: { XXX: 30 } },
      ],
      unattributed: { conversions: 1, value_by_currency: { XXX: 20 } },
    });
    for (const { stored, sql } of await bothPaths(b)) expect(stored).toEqual(sql);
  });

  it('stored credits equal the SQL path on random histories (shuffled, duplicated, late)', async () => {
    const kinds = [
      'sponsored.served',
      'sponsored.clicked',
      'order.placed',
      'lead.submitted',
      'appointment.booked',
    ];
    const event = fc.record({
      kind: fc.integer({ min: 0, max: 4 }),
      user: fc.integer({ min: 0, max: 5 }),
      hour: fc.integer({ min: 0, max: 240 }),
      campaign: fc.constantFrom('c1', 'c2', 'c3'),
      value: fc.integer({ min: 0, max: 100 }),
      currency: fc.constantFrom('', 'USD', 'eur'),
    });
    await fc.assert(
      fc.asyncProperty(
        fc
          .array(event, { maxLength: 20 })
          .chain((raw) =>
            fc.tuple(
              fc.constant(raw),
              fc.shuffledSubarray([...raw.keys(), ...raw.keys()], { minLength: raw.length * 2 }),
              fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 40, maxLength: 40 }),
            ),
          ),
        async ([raw, order, cuts]) => {
          const b = `pb${++biz}`;
          const evs = raw.map((r) => {
            const type = kinds[r.kind];
            const props = type.startsWith('sponsored')
              ? { campaign_id: r.campaign }
              : r.kind === 4
                ? {}
                : { value: r.value, ...(r.currency ? { currency: r.currency } : {}) };
            return ev(type, `u${r.user}`, r.hour * H, { business_id: b, props });
          });
          await insertEvents(store, evs);
          // Every event twice, in a random order, in batches of random sizes.
          const stream = order.map((i) => evs[i]);
          const p = createAttributionProcessor({
            store,
            logger,
            metrics,
            topic: 'parley.events',
            pipeline: pipeline(),
          });
          // Every other history with the touchpoint filter in use, the others reading every batch.
          if (biz % 2 === 0) {
            p.onAssign?.(new Map([['parley.events', [0]]]));
            expect(await p.touchFilter()).toBe(true);
          }
          for (let i = 0, c = 0; i < stream.length; i += cuts[c++ % cuts.length])
            await p.handle(batchOf(stream.slice(i, i + cuts[c % cuts.length])), ctx);
          for (const { stored, sql } of await bothPaths(b)) expect(stored).toEqual(sql);
        },
      ),
      { numRuns: 20 },
    );
  }, 240_000);

  it('counts stored copies of a touchpoint once when a replay has stored them twice', async () => {
    // A restart replays what was not committed: the same first copies are stored again, and the
    // copies stay apart until a merge (stopped here) folds them.
    const b = `pb${++biz}`;
    const db = store.database;
    await store.client.command({ query: `SYSTEM STOP MERGES ${db}.attribution_touches` });
    try {
      const o = ev('order.placed', 'u1', 10 * H, { business_id: b, props: { value: 30 } });
      const view = ev('sponsored.served', 'u1', 9 * H, { business_id: b, props: { campaign_id: 'v' } });
      const click = ev('sponsored.clicked', 'u1', 2 * H, { business_id: b, props: { campaign_id: 'k' } });
      const late = ev('sponsored.clicked', 'u1', 3 * H, { business_id: b, props: { campaign_id: 'l' } });
      await insertEvents(store, [o, view, click, late]);
      const fresh = () =>
        createAttributionProcessor({ store, logger, metrics, topic: 'parley.events', pipeline: pipeline() });
      await fresh().handle(batchOf([click, view, o]), ctx);
      const restarted = fresh();
      await restarted.handle(batchOf([click, view, o]), ctx);
      await restarted.handle(batchOf([late]), ctx);
      const [{ copies }] = await queryRows<{ copies: number }>(store, {
        query: `SELECT count() AS copies FROM ${db}.attribution_touches WHERE business_id = {b:String}`,
        query_params: { b },
      });
      expect(Number(copies)).toBe(7);
      const [{ version }] = await queryRows<{ version: number }>(store, {
        query: `SELECT max(version) AS version FROM ${db}.attribution_credits WHERE conversion_id = {id:String}`,
        query_params: { id: o.event_id },
      });
      expect(Number(version)).toBe(3);
      const [, , linear] = await bothPaths(b);
      expect(linear.stored).toMatchObject({
        rows: [
          { campaign_id: 'k', conversions: 0.5, value_by_currency: { XXX: 15 } },
          { campaign_id: 'l', conversions: 0.5, value_by_currency: { XXX: 15 } },
        ],
        unattributed: { conversions: 0 },
      });
      for (const { stored, sql } of await bothPaths(b)) expect(stored).toEqual(sql);
    } finally {
      await store.client.command({ query: `SYSTEM START MERGES ${db}.attribution_touches` });
    }
  });

  it('runs as a consumer group on the embedded bus', async () => {
    const b = `pb${++biz}`;
    const bus = await createLocalBus({
      dir: join(
        store.kind === 'embedded' ? await import('node:os').then((m) => m.tmpdir()) : '.',
        `parley-bus-${process.pid}-${Date.now()}`,
      ),
      logger,
      retentionMs: 3_600_000,
      retentionBytes: 1 << 30,
    });
    await bus.ensureTopics([{ name: 'parley.events', partitions: 2 }]);
    const p = createAttributionProcessor({
      store,
      logger,
      metrics,
      topic: 'parley.events',
      pipeline: pipeline(bus),
      batchWaitMs: 10,
    });
    const running = await runProcessors(new EventFeed(bus), [p], logger, metrics);
    const evs = [
      ev('sponsored.clicked', 'u1', 0, { business_id: b, props: { campaign_id: 'c' } }),
      ev('order.placed', 'u1', H, { business_id: b, props: { value: 12 } }),
    ];
    await insertEvents(store, evs);
    await bus.publish(
      'parley.events',
      evs.map((e) => ({ key: e.user_id, value: JSON.stringify(canonical(e)) })),
    );
    const deadline = Date.now() + 10_000;
    while (
      Date.now() < deadline &&
      (await bus.lag('parley-attribution', 'parley.events')).some((l) => l.committed < l.end)
    )
      await new Promise((r) => setTimeout(r, 50));
    await running.stop();
    await bus.close();
    const [, , linear] = await bothPaths(b);
    expect(linear.stored).toEqual({
      model: 'linear',
      rows: [{ campaign_id: 'c', campaign_name: null, conversions: 1, value_by_currency: { XXX: 12 } }],
      unattributed: { conversions: 0, value_by_currency: {} },
    });
  });
});
