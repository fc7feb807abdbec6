import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecisionEngine } from '../api/decisions/feed.ts';
import { topicNames } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { testApp } from './helpers/app.ts';

// The decision engine's counters see one event per event_id, the first copy on the bus.

let t: Awaited<ReturnType<typeof testApp>>;
beforeAll(async () => {
  t = await testApp();
});
afterAll(() => t.close());

describe('decision engine and duplicates', () => {
  it('counts a sponsored.served re-sent with another time and price once, at its first copy', async () => {
    const served = (agoMs: number, price: number) => ({
      event_id: 'served-twice',
      type: 'sponsored.served',
      occurred_at: new Date(Date.now() - agoMs).toISOString(),
      business_id: 'b8',
      user_id: 'w1',
      thread_id: 't_b8_w1',
      channel: 'webchat',
      props: { decision_id: 'd_twice', campaign_id: 'cmp_twice', price_micros: price },
    });
    await t.bus.publish(
      topicNames(t.config).events,
      [served(60_000, 100), served(30_000, 900)].map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    );
    const engine = await createDecisionEngine({
      store: t.store,
      feed: t.feed,
      logger: createLogger({ level: 'silent' }),
      topics: topicNames(t.config),
      decisions: t.config.decisions,
    });
    try {
      await engine.ready;
      expect(engine.state.statsOf('cmp_twice')).toMatchObject({ served: 1, spentTotal: 100 });
    } finally {
      await engine.stop();
    }
  });
});
