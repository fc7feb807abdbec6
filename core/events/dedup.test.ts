import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore } from '../../test/reports-helpers.ts';
import { EventMessage } from './message.ts';
import { createLogger } from '../log.ts';
import type { Store } from '../store/client.ts';
import { createDedupIndex, IdFilter, isFirstSeen, RecentIds, registryLines } from './dedup.ts';

const logger = createLogger({ level: 'silent' });
let store: Store;
let close: () => Promise<void>;
beforeAll(async () => ({ store, close } = await openTestStore()));
afterAll(() => close());

const msg = (
  id: string,
  partition: number,
  offset: number,
  occurredAt = '2026-03-01T00:00:00Z',
): EventMessage =>
  new EventMessage({
    topic: 'parley.events',
    partition,
    offset: BigInt(offset),
    key: 'u',
    value: Buffer.from(JSON.stringify({ event_id: id, type: 'message.received', occurred_at: occurredAt })),
    timestamp: Date.now(),
    headers: {},
  });
const ids = (ms: EventMessage[]) =>
  ms.map((m) => `${JSON.parse(m.value.toString()).event_id}@${m.partition}:${m.offset}`);

describe('IdFilter', () => {
  it('always finds what was added and rarely what was not', () => {
    const f = new IdFilter(50_000);
    for (let i = 0; i < 50_000; i++) f.add(`in-${i}`);
    for (let i = 0; i < 50_000; i++) expect(f.has(`in-${i}`)).toBe(true);
    let wrong = 0;
    for (let i = 0; i < 50_000; i++) if (f.has(`out-${i}`)) wrong++;
    expect(wrong / 50_000).toBeLessThan(0.02);
  });
});

describe('RecentIds', () => {
  it('keeps the first position of an id, answers the same for that copy again, forgets the oldest', () => {
    const r = new RecentIds(2);
    expect(isFirstSeen(r, msg('a', 0, 1))).toBe(true);
    expect(isFirstSeen(r, msg('a', 0, 2, '2026-03-02T00:00:00Z'))).toBe(false);
    expect(isFirstSeen(r, msg('a', 0, 1))).toBe(true); // the same copy, read again
    isFirstSeen(r, msg('b', 0, 3));
    isFirstSeen(r, msg('c', 0, 4));
    isFirstSeen(r, msg('d', 0, 5));
    expect(r.get('a')).toBe(1); // two generations of two: still remembered
    isFirstSeen(r, msg('e', 0, 6));
    // 'a' and 'b' were forgotten when 'e' started a third generation.
    expect(r.get('a')).toBeUndefined();
    expect(r.get('b')).toBeUndefined();
    expect(r.get('c')).toBe(4); // partition 0, offset 4
    expect(r.get('d')).toBe(5);
    expect(isFirstSeen(r, msg('c', 3, 9))).toBe(false);
  });

  it('knows an id however its bytes spell it, and positions past 2^32', () => {
    const r = new RecentIds(1000);
    const plain = msg('caf\u00e9-\u00e8', 7, 2 ** 40);
    expect(isFirstSeen(r, plain)).toBe(true);
    expect(r.get('caf\u00e9-\u00e8')).toBe(7 * 1e12 + 2 ** 40);
    // The same id written with escapes, by another producer.
    const escaped = new EventMessage({
      ...plain,
      offset: BigInt(2 ** 40 + 1),
      value: Buffer.from('{"event_id":"caf\\u00e9-\\u00e8","type":"message.received"}'),
    });
    expect(isFirstSeen(r, escaped)).toBe(false);
    const ascii = msg('plain-id', 0, 1);
    const reordered = new EventMessage({
      ...ascii,
      offset: 2n,
      value: Buffer.from('{"type":"x","event_id":"plain-id"}'),
    });
    expect(isFirstSeen(r, ascii)).toBe(true);
    expect(isFirstSeen(r, reordered)).toBe(false);
    // No id: always a first copy.
    expect(isFirstSeen(r, new EventMessage({ ...ascii, value: Buffer.from('{"type":"x"}') }))).toBe(true);
  });

  it('tells 200,000 distinct ids apart', () => {
    const r = new RecentIds(200_000);
    let firsts = 0;
    for (let i = 0; i < 200_000; i++) if (isFirstSeen(r, msg(`id-${i}`, i % 4, i))) firsts++;
    expect(firsts).toBe(200_000);
    for (let i = 0; i < 200_000; i += 997) expect(r.get(`id-${i}`)).toBe((i % 4) * 1e12 + i);
  });
});

describe('dedup index', () => {
  it('skips later copies within a batch, across batches, after a restart and on other partitions', async () => {
    const counted: number[] = [];
    const first = createDedupIndex({ store, logger });
    await first.refresh();
    const sink = first.forStage((n) => counted.push(n));
    const batch = [msg('d1', 0, 0), msg('d2', 0, 1), msg('d1', 0, 2, '2026-03-05T00:00:00Z')];
    const firsts = await sink.firstCopies(batch);
    expect(ids(firsts)).toEqual(['d1@0:0', 'd2@0:1']);
    expect(counted).toEqual([1]);
    await sink.register(firsts);
    // The same batch again (a retry): the same answer.
    expect(ids(await sink.firstCopies(batch))).toEqual(['d1@0:0', 'd2@0:1']);

    // A new process: nothing in memory, the registry answers.
    const second = createDedupIndex({ store, logger });
    await second.refresh();
    const segments = second.forStage(() => {});
    expect(ids(await segments.firstCopies([msg('d1', 0, 7), msg('d2', 2, 9), msg('d3', 0, 8)]))).toEqual([
      'd3@0:8',
    ]);
    // The first copy itself, replayed, is still the first.
    expect(ids(await segments.firstCopies([msg('d1', 0, 0)]))).toEqual(['d1@0:0']);
    first.close();
    second.close();
  });

  it('answers a replayed batch of thousands of registered ids, looked up in several queries', async () => {
    const index = createDedupIndex({ store, logger });
    await index.refresh();
    const sink = index.forStage(() => {});
    const long = (i: number) => `replayed-${'x'.repeat(60)}-${i}`;
    const batch = Array.from({ length: 3000 }, (_, i) => msg(long(i), 1, i));
    expect((await sink.firstCopies(batch)).length).toBe(3000);
    await sink.register(batch);
    // Another process reads the same batch again, and later copies of it elsewhere.
    const other = createDedupIndex({ store, logger });
    await other.refresh();
    const stage = other.forStage(() => {});
    expect((await stage.firstCopies(batch)).length).toBe(3000);
    expect(await stage.firstCopies(batch.map((m) => new EventMessage({ ...m, partition: 2 })))).toEqual([]);
    index.close();
    other.close();
  });

  it('gives every stage the verdict the first one reached, even once the memory of ids has moved on', async () => {
    const index = createDedupIndex({ store, logger, recentIds: 2 });
    const [sink, segments] = [index.forStage(() => {}), index.forStage(() => {})];
    const batch = [msg('v1', 5, 0), msg('v2', 5, 1), msg('v1', 5, 2, '2026-03-09T00:00:00Z')];
    expect(ids(await sink.firstCopies(batch))).toEqual(['v1@5:0', 'v2@5:1']);
    // The sink reads on: the memory of two ids forgets v1 and v2.
    await sink.firstCopies([msg('v3', 5, 3), msg('v4', 5, 4), msg('v5', 5, 5), msg('v6', 5, 6)]);
    // Segments, behind the sink, reads the same positions and reaches the same verdicts, even for a
    // copy whose first it has not read itself (the memory alone would call it a first copy now).
    expect(ids(await segments.firstCopies(batch.slice(2)))).toEqual([]);
    expect(ids(await segments.firstCopies(batch))).toEqual(['v1@5:0', 'v2@5:1']);
    index.close();
  });
});

describe('registryLines', () => {
  it('writes each first copy as a TabSeparated line the engine reads back exactly', async () => {
    const at = Date.UTC(2026, 2, 4, 10, 15, 30, 7);
    // A copy of msg(...) with other bytes or another acceptance time (EventMessage is read-only).
    const as = (m: EventMessage, o: { value?: Buffer; timestamp?: number }) =>
      new EventMessage({ ...m, value: o.value ?? m.value, timestamp: o.timestamp ?? m.timestamp });
    const firsts: EventMessage[] = [
      as(msg('plain-1', 3, 2 ** 40 + 5), { timestamp: at }),
      as(msg('tab\there', 0, 0), { timestamp: at + 993 }),
      as(msg('caf\u00e9', 12, 9), { value: Buffer.from('{"event_id":"caf\\u00e9"}'), timestamp: at }),
      as(msg('x', 1, 1), { value: Buffer.from('{"type":"no id"}') }),
    ];
    const { data, h1 } = registryLines(firsts);
    expect(h1.length).toBe(3);
    expect(data.toString()).toBe(
      [
        `plain-1\t3\t${2 ** 40 + 5}\t1772619330.007\n`,
        'tab\\there\t0\t0\t1772619331.000\n',
        'caf\u00e9\t12\t9\t1772619330.007\n',
      ].join(''),
    );
    const table = `${store.database}.registry_lines`;
    await store.client.command({
      query: `CREATE TABLE ${table} (event_id String, bus_partition UInt32, bus_offset UInt64, accepted_at DateTime64(3, 'UTC')) ENGINE = Memory`,
    });
    await store.insertTsv(table, ['event_id', 'bus_partition', 'bus_offset', 'accepted_at'], data, {
      date_time_input_format: 'best_effort',
    });
    const rows = await store.rows<{ event_id: string; bus_offset: number; t: number }>({
      query: `SELECT event_id, bus_offset, toUnixTimestamp64Milli(accepted_at) AS t FROM ${table} ORDER BY bus_partition DESC`,
    });
    expect(rows).toEqual([
      { event_id: 'caf\u00e9', bus_offset: 9, t: at },
      { event_id: 'plain-1', bus_offset: 2 ** 40 + 5, t: at },
      { event_id: 'tab\there', bus_offset: 0, t: at + 993 },
    ]);
  });
});
