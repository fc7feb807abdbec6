import { describe, expect, it } from 'vitest';
import type { InMessage } from '../bus/types.ts';
import { createLocalBus } from '../bus/local.ts';
import { createLogger } from '../log.ts';
import { eventOf, typeOf } from './decoded.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const msg = (value: string): InMessage => ({
  topic: 't',
  partition: 0,
  offset: 0n,
  key: 'k',
  value: Buffer.from(value),
  timestamp: 0,
  headers: {},
});

describe('decoded events', () => {
  it('parses a message once however many consumers read it', () => {
    const m = msg('{"event_id":"e1","type":"message.received","user_id":"u"}');
    const a = eventOf(m);
    expect(a).toMatchObject({ event_id: 'e1', user_id: 'u' });
    expect(eventOf(m)).toBe(a);
    expect(typeOf(m)).toBe('message.received');
  });

  it('reads the type of JSON written in another key order by parsing it', () => {
    const m = msg('{"type":"order.placed","event_id":"e2"}');
    expect(typeOf(m)).toBe('order.placed');
  });

  it('throws for an unreadable message every time, and has no type for it', () => {
    const m = msg('{"event_id":"e3",');
    expect(() => eventOf(m)).toThrow(SyntaxError);
    expect(() => eventOf(m)).toThrow(SyntaxError);
    expect(typeOf(m)).toBeUndefined();
    expect(typeOf(msg('42'))).toBeUndefined();
  });

  it("hands consumers in the publishing process the publisher's object; a reopened log parses", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-decoded-'));
    try {
      const logger = createLogger({ level: 'silent' });
      const event = { event_id: 'e4', type: 'optout', user_id: 'u4', props: {} };
      const read = async () => {
        const bus = await createLocalBus({ dir, logger });
        await bus.ensureTopics([{ name: 'ev', partitions: 1 }]);
        return bus;
      };
      const consume = async (bus: Awaited<ReturnType<typeof read>>) => {
        const got: InMessage[] = [];
        const sub = await bus.subscribe({
          groupId: `g${Math.random()}`,
          topics: ['ev'],
          handler: async (b) => {
            got.push(...b.messages);
          },
        });
        await sub.ready;
        while (got.length === 0) await new Promise((r) => setTimeout(r, 5));
        await sub.stop();
        return got[0];
      };
      const bus = await read();
      await bus.publish('ev', [{ key: 'u4', value: JSON.stringify(event), decoded: event }]);
      const live = await consume(bus);
      expect(eventOf(live)).toBe(event);
      expect(typeOf(live)).toBe('optout');
      await bus.close();
      const reopened = await read();
      const again = await consume(reopened);
      await reopened.close();
      expect(again.decoded).toBeUndefined();
      expect(eventOf(again)).toEqual(event);
      expect(eventOf(again)).not.toBe(event);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
