import { expect } from 'vitest';
import { createDecisionEngine } from '../../api/decisions/feed.ts';
import type { Bus } from '../../core/bus/types.ts';
import { EventFeed } from '../../core/events/feed.ts';
import { type Config, topicNames } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import type { Store } from '../../core/store/client.ts';

/**
 * Starts the decision engine three times on a bus holding events and memberships, each time until
 * it has read both topics, and checks that no consumer group was left behind (`groups` lists the
 * groups of this test's topics).
 */
export async function expectNoGroupsAfterRestarts(
  deps: { store: Store; bus: Bus; config: Config },
  groups: () => Promise<string[]>,
) {
  const topics = topicNames(deps.config);
  const event = (i: number) => ({
    event_id: `restart-${i}`,
    type: 'message.received',
    occurred_at: new Date().toISOString(),
    business_id: 'b1',
    user_id: `u${i}`,
    channel: 'webchat',
    thread_id: `t${i}`,
    props: {},
  });
  await deps.bus.publish(
    topics.events,
    [1, 2, 3].map((i) => ({ key: `u${i}`, value: JSON.stringify(event(i)) })),
  );
  await deps.bus.publish(topics.membership, [
    { key: 's1:u1', value: JSON.stringify({ type: 'segment.entered', segment_id: 's1', user_id: 'u1' }) },
  ]);
  const before = new Set(await groups());
  for (let i = 0; i < 3; i++) {
    const engine = await createDecisionEngine({
      store: deps.store,
      feed: new EventFeed(deps.bus),
      logger: createLogger({ level: 'silent' }),
      topics,
      decisions: deps.config.decisions,
    });
    try {
      await engine.ready;
      expect(engine.state.users.size).toBeGreaterThanOrEqual(3);
    } finally {
      await engine.stop();
    }
  }
  expect((await groups()).filter((g) => !before.has(g))).toEqual([]);
}
