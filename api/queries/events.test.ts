import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RefEvent } from '../../core/reports/reference.ts';
import type { Store } from '../../core/store/client.ts';
import { ev, insertEvents, openTestStore, queryRows } from '../../test/reports-helpers.ts';
import { buildEventsQuery, encodeCursor } from './events.ts';

// The events page reads only the newest rows; copies of an event not merged yet (each insert is a
// part of its own) must neither repeat an event nor push an older one off the page.

type Row = { event_id: string; ms: string; user_id: string; type: string };

let store: Store;
let close: () => Promise<void>;
const events: RefEvent[] = [];

beforeAll(async () => {
  ({ store, close } = await openTestStore());
  for (let i = 0; i < 40; i++)
    events.push(ev(i % 3 ? 'message.sent' : 'message.received', `u${i % 4}`, i * 1000));
  // Two events at the same instant, ordered by event_id.
  events.push(ev('order.placed', 'u1', 39_000, { event_id: 'zz-same-time' }));
  await insertEvents(store, events);
  // The ten newest events copied three more times, each copy in another part.
  const newest = [...events].sort((a, b) => b.t - a.t).slice(0, 10);
  for (let c = 0; c < 3; c++) await insertEvents(store, newest);
}, 60_000);
afterAll(() => close());

/** The reference: distinct events, newest first, by (time, event_id). */
const expected = (keep: (e: RefEvent) => boolean) =>
  events
    .filter(keep)
    .sort((a, b) => b.t - a.t || (a.event_id < b.event_id ? 1 : -1))
    .map((e) => e.event_id);

async function walk(limit: number, filter: { user_id?: string; type?: string } = {}) {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const rows = await queryRows<Row>(
      store,
      buildEventsQuery(store.database, { ...filter, limit: limit + 1, cursor }),
    );
    const page = rows.slice(0, limit);
    ids.push(...page.map((r) => r.event_id));
    const last = page.at(-1);
    if (rows.length <= limit || !last) return ids;
    cursor = encodeCursor(Number(last.ms), last.event_id);
  }
}

describe('buildEventsQuery on the engine, with copies not merged', () => {
  it('pages hold each event once, newest first, whatever the page size', async () => {
    for (const limit of [1, 3, 5, 10, 12, 50]) expect(await walk(limit)).toEqual(expected(() => true));
  });

  it('filters apply to the newest rows it reads', async () => {
    expect(await walk(4, { user_id: 'u1' })).toEqual(expected((e) => e.user_id === 'u1'));
    expect(await walk(2, { type: 'message.received' })).toEqual(
      expected((e) => e.type === 'message.received'),
    );
  });
});
