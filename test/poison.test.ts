import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../bin/server.ts';
import { topicNames, parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { metric, waitFor } from './helpers/process.ts';

// A record the store refuses after it was acknowledged (published straight to the bus here,
// past ingest's checks) goes to the dead-letter topic, and every processor keeps going past it.

const adminKey = 'pk_poison_admin_0123456789abcdef';
let dir: string;
let running: Running;
const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
  running.app.inject({
    method,
    url,
    payload: payload as object,
    headers: { authorization: `Bearer ${adminKey}` },
  });
const order = (id: string, user: string) => ({
  event_id: id,
  type: 'order.placed',
  occurred_at: new Date(Date.now() - 60_000).toISOString(),
  business_id: 'poison-shop',
  user_id: user,
  thread_id: `t_${user}`,
  channel: 'whatsapp',
  props: { value: 5 },
});
const members = async (segment: string) =>
  ((await call('GET', `/v1/segments/${segment}/members?limit=100`)).json().members as { user_id: string }[])
    .map((m) => m.user_id)
    .sort();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-poison-'));
  running = await startParley(
    parseConfig({
      PARLEY_DATA_DIR: dir,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'silent',
      PARLEY_SINK_BATCH_WAIT_MS: '20',
      PARLEY_API_KEYS: JSON.stringify([{ key: adminKey, role: 'admin' }]),
    }),
    { logger: createLogger({ level: 'silent' }), out: () => {} },
  );
});
afterAll(async () => {
  await running?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('poison records', () => {
  it('a record the store refuses is dead-lettered; the good ones behind it are stored and membership keeps changing', async () => {
    const topics = topicNames(running.config);
    const dead: { source: string; error: string; input: { event_id?: string; user_id?: string } }[] = [];
    const watch = await running.bus.subscribe({
      groupId: 'test-dlq-watch',
      topics: [topics.dlq],
      maxWaitMs: 5,
      handler: async (b) => {
        for (const m of b.messages) dead.push(JSON.parse(m.value.toString()));
      },
    });
    const seg = (
      await call('POST', '/v1/segments', {
        name: 'buyers',
        business_id: 'poison-shop',
        rule: { performed: 'order.placed' },
      })
    ).json();
    // One key: all on one partition, the poison first.
    const send = (events: object[]) =>
      running.bus.publish(
        topics.events,
        events.map((e) => ({ key: 'same-partition', value: JSON.stringify(e) })),
      );
    await send([order('poison-1', 'x\ud800y'), order('good-1', 'g1'), order('good-2', 'g2')]);

    await waitFor(
      'the good events stored',
      async () => {
        const ev = (await call('GET', '/v1/events?business_id=poison-shop')).json().events as {
          event_id: string;
        }[];
        return (
          ev
            .map((e) => e.event_id)
            .sort()
            .join() === 'good-1,good-2'
        );
      },
      20_000,
    );
    await waitFor('g1 and g2 members', async () => (await members(seg.id)).join() === 'g1,g2', 20_000);
    await send([order('good-3', 'g3')]);
    await waitFor(
      'membership still changing',
      async () => (await members(seg.id)).join() === 'g1,g2,g3',
      20_000,
    );

    // Attribution credited the good orders (stored credits: the default windows).
    await waitFor(
      'attribution past the poison',
      async () => {
        const a = await call('POST', '/v1/reports/attribution', {
          model: 'last_touch',
          from: '2020-01-01T00:00:00Z',
          to: '2030-01-01T00:00:00Z',
          business_id: 'poison-shop',
        });
        return a.json().unattributed?.conversions === 3;
      },
      20_000,
    );
    await waitFor('dead letters', async () => new Set(dead.map((d) => d.source)).size >= 3, 20_000);
    const bySource = Object.fromEntries(dead.map((d) => [d.source, d]));
    expect(bySource.sink.input.event_id).toBe('poison-1');
    expect(bySource.sink.error).toBeTruthy();
    expect(bySource.segments.input.user_id).toBe('x\ud800y');
    expect(bySource.attribution.input.user_id).toBe('x\ud800y');
    expect(
      await metric(running.url, adminKey, 'parley_processor_dead_letters_total', { stage: 'sink' }),
    ).toBe(1);
    await watch.stop();
  }, 60_000);
});
