import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { topicNames } from '../../core/config.ts';
import type { Config } from '../../core/config.ts';
import { type MembershipMessage, membershipMessageSchema } from '../../core/segments/membership.ts';
import type { Running } from '../../bin/server.ts';

// The marketer's journey against a running Parley (embedded or on Kafka): define segments over
// the API, stream events through POST /v1/events, and watch membership changes on the bus,
// including an exit caused by nothing but time passing.

async function waitFor<T>(what: string, fn: () => T | undefined | false, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function runSegmentsScenario(
  parley: Running,
  config: Config,
  key: string,
  opts: { timeoutMs: number },
) {
  const biz = `biz_${randomBytes(4).toString('hex')}`;
  const seen: (MembershipMessage & { received: number })[] = [];
  const sub = await parley.bus.read({
    topic: topicNames(config).membership,
    from: 'earliest',
    maxWaitMs: 5,
    handler: async (b) => {
      for (const m of b.messages)
        seen.push({ ...membershipMessageSchema.parse(JSON.parse(m.value.toString())), received: Date.now() });
    },
  });
  await sub.ready;
  const auth = { authorization: `Bearer ${key}` };
  const define = async (name: string, rule: unknown) => {
    const res = await parley.app.inject({
      method: 'POST',
      url: '/v1/segments',
      headers: auth,
      payload: { name, business_id: biz, rule },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as string;
  };
  const send = async (events: object[]) => {
    const res = await parley.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: auth,
      payload: events,
    });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json().accepted).toBe(events.length);
  };
  const changes = (segment: string) =>
    seen
      .filter((m) => m.segment_id === segment)
      .map((m) => `${m.type === 'segment.entered' ? '+' : '-'}${m.user_id}`);
  const msg = (id: string, user: string) => ({
    event_id: `${biz}-${id}`,
    type: 'message.received',
    occurred_at: new Date().toISOString(),
    business_id: biz,
    user_id: user,
    channel: 'whatsapp',
    props: { text: 'hi, a haircut please' },
  });

  try {
    const recent = await define('messaged in the last 3 s', {
      performed: 'message.received',
      within_seconds: 3,
    });
    const twice = await define('messaged twice', { performed: 'message.received', count: { gte: 2 } });
    const quiet = await define('never ordered', { not: { performed: 'order.placed' } });

    const first = msg('1', 'alice');
    const sent = Date.now();
    await send([first]);
    await waitFor('alice enters "recent"', () => changes(recent).includes('+alice'), opts.timeoutMs);
    await waitFor('alice enters "never ordered"', () => changes(quiet).includes('+alice'), opts.timeoutMs);
    const enteredAt = seen.find((m) => m.segment_id === recent && m.user_id === 'alice')?.received ?? 0;

    await send([first, first]); // the same event again: still one message
    const bobSent = Date.now();
    await send([msg('2', 'bob')]);
    await waitFor('bob enters "recent"', () => changes(recent).includes('+bob'), opts.timeoutMs);
    const bobLatencyMs =
      (seen.find((m) => m.segment_id === recent && m.user_id === 'bob')?.received ?? 0) - bobSent;
    expect(changes(twice)).toEqual([]);

    await send([msg('3', 'alice')]);
    await waitFor('alice enters "twice"', () => changes(twice).includes('+alice'), opts.timeoutMs);

    // Nothing more is sent: alice and bob leave "recent" when their 3 s windows pass.
    await waitFor(
      'alice exits "recent" by time alone',
      () => changes(recent).includes('-alice'),
      opts.timeoutMs + 5000,
    );
    await waitFor(
      'bob exits "recent" by time alone',
      () => changes(recent).includes('-bob'),
      opts.timeoutMs + 5000,
    );
    const exitedAt =
      seen.find((m) => m.segment_id === recent && m.user_id === 'bob' && m.type === 'segment.exited')
        ?.received ?? 0;

    await send([{ ...msg('4', 'bob'), type: 'order.placed', props: { value: 12 } }]);
    await waitFor('bob exits "never ordered"', () => changes(quiet).includes('-bob'), opts.timeoutMs);

    // Enters and exits alternate (she may have left between her messages on a slow machine), ending outside.
    const alice = changes(recent).filter((c) => c.endsWith('alice'));
    expect(alice.length % 2).toBe(0);
    expect(alice).toEqual(alice.map((_, i) => (i % 2 === 0 ? '+alice' : '-alice')));
    expect(changes(twice)).toEqual(['+alice']);
    expect(changes(quiet).sort()).toEqual(['+alice', '+bob', '-bob']);
    // The stored membership follows the topic within moments.
    const members = async () =>
      (await parley.app.inject({ method: 'GET', url: `/v1/segments/${quiet}/members`, headers: auth }))
        .json()
        .members.map((m: { user_id: string }) => m.user_id);
    let stored = await members();
    const until = Date.now() + opts.timeoutMs;
    while (JSON.stringify(stored) !== '["alice"]' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      stored = await members();
    }
    expect(stored).toEqual(['alice']);
    return { firstEnterLatencyMs: enteredAt - sent, enterLatencyMs: bobLatencyMs, exitedAt };
  } finally {
    await sub.stop();
  }
}
