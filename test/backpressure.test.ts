import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Bus } from '../core/bus/types.ts';
import { testApp } from './helpers/app.ts';

// When the bus is slow, ingest answers 503 at once past a bound of events waiting for it, instead
// of queueing requests (and their memory) without bound.

let release: () => void = () => {};
let gate: Promise<void> = Promise.resolve();
const slowBus = (bus: Bus): Bus =>
  Object.assign(Object.create(bus) as Bus, {
    publish: async (topic: string, messages: Parameters<Bus['publish']>[1]) => {
      await gate;
      return bus.publish(topic, messages);
    },
  });

let t: Awaited<ReturnType<typeof testApp>>;
beforeAll(async () => {
  t = await testApp({ PARLEY_INGEST_MAX_PENDING_EVENTS: '50' }, { wrapBus: slowBus });
});
afterAll(() => t?.close());

const events = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({
    event_id: `bp-${tag}-${i}`,
    type: 'message.received',
    occurred_at: new Date().toISOString(),
    business_id: 'b1',
    user_id: `u${i}`,
    channel: 'webchat',
  }));
const post = (body: unknown) =>
  t.app.inject({
    method: 'POST',
    url: '/v1/events',
    payload: body as object,
    headers: { authorization: `Bearer ${t.keys.ingest}` },
  });

it('answers 503 quickly once the events waiting for a slow bus reach the bound, and recovers', async () => {
  gate = new Promise((r) => {
    release = r;
  });
  const first = post(events(40, 'a')); // waits for the bus
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  const second = await post(events(40, 'b'));
  expect(performance.now() - t0).toBeLessThan(500);
  expect(second.statusCode).toBe(503);
  expect(second.json().error).toBe('PARLEY_ERR_BUS_UNAVAILABLE');
  expect(second.headers['retry-after']).toBe('1');
  release();
  expect((await first).statusCode).toBe(202);
  expect((await post(events(40, 'c'))).statusCode).toBe(202);
  // One request larger than the bound still goes through when nothing else is waiting.
  expect((await post(events(60, 'd'))).statusCode).toBe(202);
});
