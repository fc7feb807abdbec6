import type { Bus } from '../core/bus/types.ts';
import { committedOffsets, type Offsets, waitForStored } from '../core/bus/wait.ts';
import type { EventMessage } from '../core/events/message.ts';
import { CONVERSION_TYPES, type CanonicalEvent } from '../core/events/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { DEFAULT_WINDOWS } from '../core/reports/attribution.ts';
import { ALL_MODELS } from '../core/reports/credits.ts';
import { MODELS, type Touch, splitConversion, touchpointsFor } from '../core/reports/models.ts';
import { IdFilter } from '../core/events/dedup.ts';
import type { Store } from '../core/store/client.ts';
import { insertIsolating } from '../core/store/isolate.ts';
import { gathering } from './gather.ts';
import type { Pipeline } from './pipeline.ts';
import type { Processor } from './types.ts';
import { entry } from '../core/maps.ts';

// Credits conversions to campaigns as events stream in, for every model at the default windows.
// Per batch (batches of partitions read side by side share one round: see `credit`): store the
// batch's touchpoints and conversions (attribution_touches, once per
// event_id), then recompute every conversion the batch can change — its own conversions, and the
// stored conversions a new touchpoint falls before — from all stored touchpoints of that user in
// that business. Credits are written with version = the number of touchpoints considered, which
// only grows, so a re-credit replaces the old split under FINAL and a replay rewrites the same
// rows. A conversion with no touchpoint to consider gets one row for every model (ALL_MODELS)
// instead of one per model. Offsets are committed only after both inserts.
//
// Most conversions have no touchpoint at all. A Bloom filter of the (business, user) pairs that
// have a stored touchpoint answers for them: a batch without touchpoints whose users the filter
// surely lacks needs no read of the store (its conversions are unattributed, as the read would
// show). The filter is read from the store whenever this member is given partitions (a user's
// events all travel on one partition, so the touchpoints a conversion can meet are then stored),
// and grows with every touchpoint this processor stores. Until it is read, every batch reads.

const TOUCH_TYPES = new Set(['sponsored.served', 'sponsored.clicked']);
const CONVERSIONS = new Set<string>(CONVERSION_TYPES);
const LOOKBACK_MS =
  Math.max(DEFAULT_WINDOWS.click_window_seconds, DEFAULT_WINDOWS.view_window_seconds) * 1000;

const INSERT_SETTINGS = { date_time_input_format: 'best_effort' } as const;
/** Pairs the touchpoint filter is sized for (1% false positives there; more only cost reads). */
const TOUCHED_PAIRS = 4_000_000;
const pairKey = (business_id: string, user_id: string) => `${business_id}\u0000${user_id}`;

type Kept = {
  event_id: string;
  type: string;
  t: number;
  business_id: string;
  user_id: string;
  campaign_id: string;
  value: number;
};

export function createAttributionProcessor(deps: {
  store: Store;
  logger: Logger;
  metrics: Metrics;
  topic: string;
  groupId?: string;
  batchSize?: number;
  batchWaitMs?: number;
  pipeline: Pipeline;
  /**
   * How far the events topic is stored (the sink's `storedOffsets`): start only once the store
   * holds everything this processor's group has committed on the bus.
   */
  storedBy?: { bus: Bus; storedOffsets: () => Promise<Offsets> };
}): Processor & {
  /** Resolves once the touchpoint filter of the latest assignment is read: whether it is in use. */
  touchFilter(): Promise<boolean>;
} {
  const log = deps.logger.child({ component: 'attribution' });
  const db = deps.store.database;
  const groupId = deps.groupId ?? 'parley-attribution';
  // Only the first copy of an event is a touchpoint or a conversion (core/events/dedup.ts).
  const dedup = deps.pipeline.dedup('attribution');

  // Rows the store refuses go to the dead-letter topic; the rest are stored.
  async function insert(table: string, rows: object[]) {
    const refused = await insertIsolating(rows, (part) => {
      let text = '';
      for (const r of part) text += `${JSON.stringify(r)}\n`;
      return deps.store.insertJsonLines(`${db}.${table}`, Buffer.from(text), INSERT_SETTINGS);
    });
    await deps.pipeline.deadLetters(
      'attribution',
      refused.map(({ item, error }) => ({ error, input: item })),
    );
  }

  // The pairs with a stored touchpoint (see above): undefined until read, and while it is read
  // again; `filling` takes the touchpoints stored meanwhile.
  let touched: IdFilter | undefined;
  let filling: IdFilter | undefined;
  let reading: Promise<void> = Promise.resolve();
  function readTouched() {
    const next = new IdFilter(TOUCHED_PAIRS);
    touched = undefined;
    filling = next;
    reading = (async () => {
      let pairs = 0;
      for await (const r of deps.store.each<{ business_id: string; user_id: string }>({
        query: `SELECT DISTINCT business_id, user_id FROM ${db}.attribution_touches WHERE type IN {touchTypes:Array(String)}`,
        query_params: { touchTypes: [...TOUCH_TYPES] },
      })) {
        if (filling !== next) return; // superseded by a newer assignment
        next.add(pairKey(r.business_id, r.user_id));
        pairs++;
      }
      if (filling !== next) return;
      touched = next;
      filling = undefined;
      log.debug({ pairs }, 'touchpoint filter read');
    })().catch((err) => {
      // Batches keep reading the store; the next assignment tries again.
      if (filling === next) filling = undefined;
      log.warn({ err }, 'reading the touchpoint filter failed; every batch reads the store');
    });
  }
  /** Whether a batch's credits may depend on stored rows (always, until the filter is read). */
  function needsStored(kept: Kept[]): boolean {
    const filter = touched;
    if (!filter) return true;
    for (const k of kept)
      if (TOUCH_TYPES.has(k.type) || filter.has(pairKey(k.business_id, k.user_id))) return true;
    return false;
  }

  // The stored rows a batch's credits depend on: the touchpoints of every user in the batch, and
  // the conversions of users with a touchpoint in it (the only ones a new touchpoint can change).
  // Read without FINAL: the table holds at most copies of one row per event_id (a replay writes
  // the same first copy again), and copies are dropped here by event_id, as a merge would.
  async function load(kept: Kept[]): Promise<Kept[]> {
    // Users and businesses of the batch: a superset of its (user, business) pairs, which are
    // told apart in memory.
    const users = [...new Set(kept.map((k) => k.user_id))];
    const businesses = [...new Set(kept.map((k) => k.business_id))];
    const touchUsers = [...new Set(kept.filter((k) => TOUCH_TYPES.has(k.type)).map((k) => k.user_id))];
    const times = kept.map((k) => k.t);
    const rows = await deps.store.rows<Kept & { t: number | string }>({
      query: `SELECT event_id, type, toInt64(toUnixTimestamp64Milli(occurred_at)) AS t, business_id, user_id, campaign_id, value
FROM ${db}.attribution_touches
WHERE user_id IN {users:Array(String)} AND business_id IN {businesses:Array(String)}
  AND occurred_at >= fromUnixTimestamp64Milli({lo:Int64}) AND occurred_at <= fromUnixTimestamp64Milli({hi:Int64})
  AND (type IN {touchTypes:Array(String)}${touchUsers.length ? ' OR user_id IN {touchUsers:Array(String)}' : ''})`,
      query_params: {
        users,
        businesses,
        touchTypes: [...TOUCH_TYPES],
        touchUsers,
        lo: Math.min(...times) - LOOKBACK_MS,
        hi: Math.max(...times) + LOOKBACK_MS,
      },
    });
    const byId = new Map<string, Kept>();
    for (const r of rows)
      if (!byId.has(r.event_id)) byId.set(r.event_id, { ...r, t: Number(r.t), value: Number(r.value) });
    return [...byId.values()];
  }

  function creditRows(stored: Kept[], batch: Kept[]) {
    const byPair = new Map<string, Kept[]>();
    for (const k of stored) {
      const key = `${k.user_id}\u0000${k.business_id}`;
      entry(byPair, key, () => []).push(k);
    }
    const affected = new Map<string, Kept>();
    for (const b of batch) {
      const mine = byPair.get(`${b.user_id}\u0000${b.business_id}`) ?? [];
      if (CONVERSIONS.has(b.type)) affected.set(b.event_id, b);
      else
        for (const c of mine)
          if (CONVERSIONS.has(c.type) && c.t > b.t && c.t - b.t <= LOOKBACK_MS) affected.set(c.event_id, c);
    }
    const rows: Record<string, unknown>[] = [];
    for (const c of affected.values()) {
      const touches: Touch[] = (byPair.get(`${c.user_id}\u0000${c.business_id}`) ?? [])
        .filter((k) => TOUCH_TYPES.has(k.type))
        .map((k) => ({
          event_id: k.event_id,
          t: k.t,
          campaign_id: k.campaign_id,
          click: k.type === 'sponsored.clicked',
        }));
      const { chosen, considered } = touchpointsFor(c.t, touches, DEFAULT_WINDOWS);
      const row = (model: string, campaign_id: string, weight: number) =>
        rows.push({
          model,
          conversion_id: c.event_id,
          campaign_id,
          conversion_type: c.type,
          occurred_at: new Date(c.t).toISOString(),
          business_id: c.business_id,
          user_id: c.user_id,
          weight,
          value: weight * c.value,
          version: considered.length,
        });
      // With no touchpoint to consider, every model leaves the whole conversion unattributed: one
      // row under ALL_MODELS says so for all of them. Once touchpoints count, that row is zeroed.
      if (considered.length === 0) {
        row(ALL_MODELS, '', 1);
        continue;
      }
      row(ALL_MODELS, '', 0);
      for (const model of MODELS) {
        // Every campaign that could have held a share before gets a row, 0 if it holds none now.
        const shares = new Map<string, number>([
          ['', 0],
          ...considered.map((x) => [x.campaign_id, 0] as [string, number]),
        ]);
        for (const [campaign, w] of splitConversion(model, c.t, chosen, DEFAULT_WINDOWS.half_life_seconds))
          shares.set(campaign, (shares.get(campaign) ?? 0) + w);
        for (const [campaign_id, weight] of shares) row(model, campaign_id, weight);
      }
    }
    return { rows, conversions: affected.size };
  }

  // The touchpoints and conversions of batches read side by side (other partitions: other
  // users) are stored, looked up and credited together: two inserts and at most one read a round.
  // A round waits as long as a batch does, so each partition's batch of that time joins it.
  const batchWaitMs = deps.batchWaitMs ?? 1000;
  const credit = gathering<Kept>(async (all) => {
    const kept = new Map<string, Kept>();
    for (const k of all) if (!kept.has(k.event_id)) kept.set(k.event_id, k);
    const batchRows = [...kept.values()];
    const readStore = needsStored(batchRows);
    await insert(
      'attribution_touches',
      batchRows.map((k) => ({ ...k, occurred_at: new Date(k.t).toISOString(), t: undefined })),
    );
    for (const k of batchRows)
      if (TOUCH_TYPES.has(k.type)) {
        const key = pairKey(k.business_id, k.user_id);
        touched?.add(key);
        filling?.add(key);
      }
    const { rows, conversions } = creditRows(readStore ? await load(batchRows) : [], batchRows);
    if (rows.length) await insert('attribution_credits', rows);
    log.debug({ events: batchRows.length, conversions }, 'credited conversions');
  }, batchWaitMs);

  return {
    name: 'attribution',
    groupId,
    topics: [deps.topic],
    // Each round costs an insert, a query and an insert in ClickHouse whatever its size: large
    // batches keep that overhead off the ingest path (credits trail the bus by one to two seconds).
    maxBatchSize: deps.batchSize ?? 20000,
    maxWaitMs: batchWaitMs,
    onAssign: () => readTouched(),
    touchFilter: async () => {
      await reading;
      return touched !== undefined;
    },
    async init() {
      // Copies read after a restart are checked against everything consumed before it.
      const stored = deps.storedBy;
      if (stored)
        await waitForStored(() => committedOffsets(stored.bus, groupId, deps.topic), stored.storedOffsets, {
          timeoutMs: 30_000,
          log,
        });
      await deps.pipeline.index.refresh();
    },
    async handle(batch) {
      const kept: Kept[] = [];
      for (const m of await dedup.firstCopies(batch.messages)) {
        const k = decode(m, log);
        if (k) kept.push(k);
      }
      deps.metrics.processed.labels('attribution').inc(batch.messages.length);
      if (kept.length) await credit(kept);
    },
  };
}

function decode(m: EventMessage, log: Logger): Kept | undefined {
  // Most events are neither touchpoints nor conversions: skip them without parsing.
  const type = m.type;
  if (type !== undefined && !TOUCH_TYPES.has(type) && !CONVERSIONS.has(type)) return undefined;
  let e: CanonicalEvent;
  try {
    e = m.event();
  } catch (err) {
    log.error(
      { err, partition: m.partition, offset: m.offset.toString() },
      'dropping an undecodable message',
    );
    return undefined;
  }
  if (!TOUCH_TYPES.has(e.type) && !CONVERSIONS.has(e.type)) return undefined;
  const t = Date.parse(e.occurred_at);
  if (!Number.isFinite(t)) return undefined;
  const value = typeof e.props?.value === 'number' ? e.props.value : 0;
  const campaign_id = typeof e.props?.campaign_id === 'string' ? e.props.campaign_id : '';
  return {
    event_id: e.event_id,
    type: e.type,
    t,
    business_id: e.business_id,
    user_id: e.user_id,
    campaign_id,
    value,
  };
}
