import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLocalBus } from '../bus/local.ts';
import type { Bus, InMessage } from '../bus/types.ts';
import { createLogger } from '../log.ts';
import { type EventBatch, EventFeed } from './feed.ts';
import { EventMessage } from './message.ts';
import type { CanonicalEvent } from './schema.ts';

const logger = createLogger({ level: 'silent' });

const msg = (value: string): EventMessage =>
  new EventMessage({
    topic: 't',
    partition: 0,
    offset: 0n,
    key: 'k',
    value: Buffer.from(value),
    timestamp: 0,
    headers: {},
  });

const event = (i: number, type: CanonicalEvent['type'] = 'message.received'): CanonicalEvent => ({
  event_id: `e${i}`,
  type,
  occurred_at: '2026-03-01T00:00:00.000Z',
  business_id: 'b1',
  user_id: `u${i % 3}`,
  thread_id: `t${i % 3}`,
  channel: 'sms',
  props: { i },
});

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('EventMessage', () => {
  it('parses its event once, however often asked', () => {
    const m = msg('{"event_id":"e1","type":"message.received","user_id":"u"}');
    const a = m.event();
    expect(a).toMatchObject({ event_id: 'e1', user_id: 'u' });
    expect(m.event()).toBe(a);
    expect(m.type).toBe('message.received');
    expect(m.id).toBe('e1');
  });

  it('reads the type and id of JSON written in another key order by parsing it', () => {
    const m = msg('{"type":"order.placed","props":{"event_id":"x"},"event_id":"e2"}');
    expect(m.type).toBe('order.placed');
    expect(m.id).toBe('e2');
  });

  it('throws for an unreadable message every time, and has no type or id for it', () => {
    const m = msg('{"event_id":"e3",');
    expect(() => m.event()).toThrow(SyntaxError);
    expect(() => m.event()).toThrow(SyntaxError);
    expect(m.type).toBeUndefined();
    expect(msg('42').type).toBeUndefined();
    expect(msg('null').id).toBeUndefined();
  });
});

describe('EventFeed', () => {
  const dirs: string[] = [];
  const buses: Bus[] = [];
  afterEach(async () => {
    for (const b of buses.splice(0)) await b.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  async function open(partitions = 2, dir?: string) {
    const d = dir ?? (await mkdtemp(join(tmpdir(), 'parley-feed-')));
    if (!dir) dirs.push(d);
    const bus = await createLocalBus({ dir: d, logger, batchIdleMs: 5 });
    buses.push(bus);
    await bus.ensureTopics([{ name: 'ev', partitions }]);
    return { bus, dir: d };
  }
  /** A consumer recording every message it is handed. */
  const recorder = () => {
    const got: EventMessage[] = [];
    return { got, handler: async (b: EventBatch) => void got.push(...b.messages) };
  };

  it("hands every consumer of the process one object per message, carrying the publisher's event", async () => {
    const { bus } = await open();
    const feed = new EventFeed(bus);
    const a = recorder();
    const b = recorder();
    const c = recorder();
    const subs = [
      await feed.subscribe({ groupId: 'a', topics: ['ev'], handler: a.handler }),
      await feed.subscribe({ groupId: 'b', topics: ['ev'], handler: b.handler, maxWaitMs: 50 }),
      await feed.read({ topic: 'ev', from: 'earliest', handler: c.handler }),
    ];
    const events = Array.from({ length: 30 }, (_, i) => event(i));
    await feed.publish('ev', events);
    await until(() => a.got.length === 30 && b.got.length === 30 && c.got.length === 30);
    const byId = (got: EventMessage[]) => new Map(got.map((m) => [m.id, m]));
    const [ma, mb, mc] = [byId(a.got), byId(b.got), byId(c.got)];
    for (const e of events) {
      const m = ma.get(e.event_id) as EventMessage;
      // Decoded once for the process: the same object for all three, and no parse at all.
      expect(mb.get(e.event_id)).toBe(m);
      expect(mc.get(e.event_id)).toBe(m);
      expect(m.isDecoded).toBe(true);
      expect(m.event()).toBe(e);
    }
    for (const s of subs) await s.stop();
    // Nothing is held once every consumer read past it, nor once none is left.
    expect(feed.held('ev', 0) + feed.held('ev', 1)).toBe(0);
  });

  it('decodes from the bytes what another process published, once for all consumers here', async () => {
    const { bus } = await open(1);
    const feed = new EventFeed(bus);
    const elsewhere = new EventFeed(bus); // another process's feed: it hands nothing over to this one
    const a = recorder();
    const b = recorder();
    const subs = [
      await feed.subscribe({ groupId: 'a', topics: ['ev'], handler: a.handler }),
      await feed.subscribe({ groupId: 'b', topics: ['ev'], handler: b.handler }),
    ];
    const e = event(1, 'order.placed');
    await elsewhere.publish('ev', [e]);
    await until(() => a.got.length === 1 && b.got.length === 1);
    const [m] = a.got;
    expect(b.got[0]).toBe(m);
    expect(m.isDecoded).toBe(false);
    expect(m.type).toBe('order.placed'); // read from the bytes, still not parsed
    expect(m.isDecoded).toBe(false);
    expect(m.event()).toEqual(e);
    expect(m.event()).not.toBe(e);
    for (const s of subs) await s.stop();
  });

  it('raises for a malformed message at each consumer, and the messages around it read well', async () => {
    const { bus } = await open(1);
    const feed = new EventFeed(bus);
    const outcomes: string[][] = [[], []];
    const subs = await Promise.all(
      [0, 1].map((k) =>
        feed.subscribe({
          groupId: `g${k}`,
          topics: ['ev'],
          handler: async (b) => {
            for (const m of b.messages) {
              try {
                outcomes[k].push(m.event().event_id);
              } catch (err) {
                outcomes[k].push((err as Error).name);
              }
            }
          },
        }),
      ),
    );
    await feed.publish('ev', [event(1)]);
    await bus.publish('ev', [{ key: 'u1', value: '{"event_id":"broken",' }]);
    await feed.publish('ev', [event(2)]);
    await until(() => outcomes[0].length === 3 && outcomes[1].length === 3);
    expect(outcomes).toEqual([
      ['e1', 'SyntaxError', 'e2'],
      ['e1', 'SyntaxError', 'e2'],
    ]);
    for (const s of subs) await s.stop();
  });

  it('holds at most its memory bound for a consumer that lags, and the laggard decodes the rest', async () => {
    const { bus } = await open(1);
    // Each held event counts 200 bytes and twice its JSON: 10,000 bytes hold a few dozen at most.
    const feed = new EventFeed(bus, { maxHeldBytesPerPartition: 10_000 });
    const fast = recorder();
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const slow: EventMessage[] = [];
    const subs = [
      await feed.subscribe({ groupId: 'fast', topics: ['ev'], handler: fast.handler }),
      await feed.subscribe({
        groupId: 'slow',
        topics: ['ev'],
        maxBatchSize: 1000,
        handler: async (b) => {
          await released;
          slow.push(...b.messages);
        },
      }),
    ];
    const events = Array.from({ length: 200 }, (_, i) => event(i));
    try {
      for (let i = 0; i < 200; i += 20) await feed.publish('ev', events.slice(i, i + 20));
      await until(() => fast.got.length === 200);
      // The slow group holds its first batch: everything after it waits for it, within the bound.
      expect(feed.held('ev', 0)).toBeGreaterThan(0);
      expect(feed.held('ev', 0)).toBeLessThanOrEqual(
        Math.floor(10_000 / (200 + 2 * JSON.stringify(events[199]).length)),
      );
    } finally {
      release();
    }
    await until(() => slow.length === 200);
    expect(slow.map((m) => m.event().event_id)).toEqual(events.map((e) => e.event_id));
    // What was dropped was decoded again from the bytes: other objects, equal events.
    const shared = slow.filter((m, i) => m === fast.got[i]).length;
    expect(shared).toBeLessThan(200);
    for (const s of subs) await s.stop();
  });

  it('hands nothing over, and holds nothing, for a topic nobody here reads', async () => {
    const { bus } = await open(1);
    const feed = new EventFeed(bus);
    await feed.publish('ev', [event(1), event(2)]);
    expect(feed.held('ev', 0)).toBe(0);
    // Read later, it is decoded from the bytes.
    const got: InMessage[] = [];
    const r = await feed.read({
      topic: 'ev',
      from: 'earliest',
      handler: async (b) => void got.push(...b.messages),
    });
    await until(() => got.length === 2);
    await r.stop();
  });

  it('translates a failed publish into a retriable PARLEY_ERR_BUS_UNAVAILABLE', async () => {
    const { bus } = await open(1);
    const feed = new EventFeed({ ...bus, publish: () => Promise.reject(new Error('disk gone')) });
    await expect(feed.publish('ev', [event(1)])).rejects.toMatchObject({
      code: 'PARLEY_ERR_BUS_UNAVAILABLE',
    });
  });
});
