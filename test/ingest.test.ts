import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParleyError } from '../core/errors.ts';
import { topicNames } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { runProcessors } from '../processors/runner.ts';
import { createSink } from '../processors/sink.ts';
import { testApp } from './helpers/app.ts';
import { createPipeline } from '../processors/pipeline.ts';

let t: Awaited<ReturnType<typeof testApp>>;
let failing = false;
let stopSink: () => Promise<void>;

const ev = (i: number, over: Record<string, unknown> = {}) => ({
  event_id: `ing-${i}`,
  type: 'message.received',
  occurred_at: new Date(Date.now() - 60_000 + i).toISOString(),
  business_id: 'b1',
  user_id: `u${i % 5}`,
  channel: 'webchat',
  props: { text: 'hello there' },
  ...over,
});

const post = (body: string | Buffer, opts: { key?: string | null; type?: string } = {}) =>
  t.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: {
      ...(opts.key === null ? {} : { authorization: `Bearer ${opts.key ?? t.keys.ingest}` }),
      ...(opts.type === '' ? {} : { 'content-type': opts.type ?? 'application/json' }),
    },
    payload: body,
  });

beforeAll(async () => {
  t = await testApp(
    { PARLEY_BODY_LIMIT_BYTES: String(256 * 1024) },
    {
      wrapBus: (bus) => ({
        ...bus,
        publish: (topic, msgs) =>
          failing ? Promise.reject(new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE')) : bus.publish(topic, msgs),
      }),
    },
  );
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  const sink = createSink({
    pipeline: createPipeline({
      store: t.store,
      bus: t.bus,
      logger,
      metrics,
      dlqTopic: topicNames(t.config).dlq,
    }),
    store: t.store,
    bus: t.bus,
    logger,
    metrics,
    topic: topicNames(t.config).events,
    batchSize: 1000,
    batchWaitMs: 20,
  });
  const running = await runProcessors(t.feed, [sink], logger, metrics);
  stopSink = async () => {
    await running.stop();
  };
});
afterAll(async () => {
  await stopSink();
  await t.close();
});

async function storedCount(where = '1') {
  const rs = await t.store.client.query({
    query: `SELECT count() c FROM ${t.store.database}.events FINAL WHERE ${where}`,
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ c: string }>())[0].c);
}
async function waitStored(n: number, where = '1') {
  const end = Date.now() + 10_000;
  while ((await storedCount(where)) < n) {
    if (Date.now() > end) throw new Error(`only ${await storedCount(where)} of ${n} stored`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('POST /v1/events', () => {
  it('accepts a JSON array, stores it, and reads it back newest first', async () => {
    const res = await post(JSON.stringify([ev(1), ev(2), ev(3)]));
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ accepted: 3, rejected: [] });
    await waitStored(3, "event_id LIKE 'ing-%'");
    const got = await t.app.inject({
      url: '/v1/events?limit=2',
      headers: { authorization: `Bearer ${t.keys.analyst}` },
    });
    expect(got.statusCode).toBe(200);
    const body = got.json();
    expect(body.events.map((e: { event_id: string }) => e.event_id)).toEqual(['ing-3', 'ing-2']);
    expect(body.events[0].props).toEqual({ text_length: 11 });
    const page2 = await t.app.inject({
      url: `/v1/events?limit=2&cursor=${body.next}`,
      headers: { authorization: `Bearer ${t.keys.analyst}` },
    });
    expect(page2.json().events.map((e: { event_id: string }) => e.event_id)).toEqual(['ing-1']);
  });

  it('accepts NDJSON and rejects a malformed line on its own', async () => {
    const body = `${JSON.stringify(ev(10))}\n{"event_id": nope}\n${JSON.stringify(ev(11))}\n`;
    const res = await post(body, { type: 'application/x-ndjson' });
    expect(res.statusCode).toBe(202);
    expect(res.json().accepted).toBe(2);
    expect(res.json().rejected).toEqual([
      { index: 1, error: expect.stringMatching(/^line is not valid JSON/) },
    ]);
  });

  it('skips blank NDJSON lines; each rejected line keeps its line number as index', async () => {
    const body = `\n${JSON.stringify(ev(12))}\n   \n\r\n{"event_id": nope}\n\n${JSON.stringify(ev(13))}\n\n`;
    const res = await post(body, { type: 'application/x-ndjson' });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({
      accepted: 2,
      rejected: [{ index: 4, error: expect.stringMatching(/^line is not valid JSON/) }],
    });
    const blank = await post('\n \n', { type: 'application/x-ndjson' });
    expect(blank.statusCode).toBe(400);
    expect(blank.json().message).toBe('The body holds no events');
  });

  it('refuses, per event, what the store or a later stage would refuse', async () => {
    const res = await post(
      JSON.stringify([
        ev(60, { user_id: 'x\ud800y' }),
        ev(61, { user_id: 'u'.repeat(124) }),
        ev(62, { props: { 'a.b': 1 } }),
        ev(63, { props: { '': 1 } }),
        ev(64, { user_id: '  ' }),
        ev(65, { busines_id: 'b1' }),
        ev(66),
      ]),
    );
    expect(res.statusCode).toBe(202);
    const { accepted, rejected } = res.json();
    expect(accepted).toBe(1);
    expect(rejected).toEqual([
      { index: 0, error: 'user_id: contains invalid Unicode (a lone UTF-16 surrogate)' },
      {
        index: 1,
        error: expect.stringMatching(/^thread_id: the default thread_id .* would be 129 characters/),
      },
      { index: 2, error: expect.stringMatching(/^props: the prop name "a.b" cannot be queried/) },
      { index: 3, error: expect.stringMatching(/^props: the prop name "" cannot be queried/) },
      { index: 4, error: 'user_id: must not be only whitespace' },
      { index: 5, error: 'unknown key "busines_id"; did you mean "business_id"?' },
    ]);
  });

  it('counts a duplicate event_id once, within a request and across requests', async () => {
    const dup = ev(20, { event_id: 'dup-1' });
    expect((await post(JSON.stringify([dup, dup]))).statusCode).toBe(202);
    expect((await post(JSON.stringify([dup]))).statusCode).toBe(202);
    await waitStored(1, "event_id = 'dup-1'");
    await new Promise((r) => setTimeout(r, 200));
    expect(await storedCount("event_id = 'dup-1'")).toBe(1);
    const got = await t.app.inject({
      url: '/v1/events?user_id=u0&limit=1000',
      headers: { authorization: `Bearer ${t.keys.analyst}` },
    });
    expect(got.json().events.filter((e: { event_id: string }) => e.event_id === 'dup-1')).toHaveLength(1);
  });

  it('rejects an event with a "__proto__" prop on its own, accepting the others', async () => {
    const body = `[${JSON.stringify(ev(40))},${JSON.stringify(ev(41)).replace('"props":{', '"props":{"__proto__":{"x":1},')}]`;
    const res = await post(body);
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({
      accepted: 1,
      rejected: [
        {
          index: 1,
          error: 'props: the prop name "__proto__" cannot be queried; use 1 to 64 letters, digits, _ or -',
        },
      ],
    });
  });

  it('rejects each bad event with its index and reason, accepting the valid ones beside it', async () => {
    const future = new Date(Date.now() + 3600_000).toISOString();
    const res = await post(
      JSON.stringify([
        ev(30),
        ev(31, { user_id: 7 }),
        ev(32, { type: 'message.teleported' }),
        ev(33, { channel: undefined }),
        ev(34, { occurred_at: future }),
        ev(35, { business_id: 'x'.repeat(500) }),
        ev(36, { type: 'order.placed', props: { value: 'lots' } }),
        'just a string',
        ev(37),
      ]),
    );
    expect(res.statusCode).toBe(202);
    const { accepted, rejected } = res.json();
    expect(accepted).toBe(2);
    expect(rejected.map((r: { index: number }) => r.index)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(rejected[0].error).toMatch(/user_id/);
    expect(rejected[1].error).toMatch(/unknown event type "message.teleported"/);
    expect(rejected[2].error).toMatch(/channel/);
    expect(rejected[3].error).toMatch(/in the future/);
    expect(rejected[4].error).toMatch(/business_id: must be at most 128/);
    expect(rejected[5].error).toMatch(/props.value/);
    expect(rejected[6].error).toMatch(/must be a JSON object/);
  });

  it('keeps rejected input on the dead-letter topic without personal data', async () => {
    const dlq: string[] = [];
    const sub = await t.bus.subscribe({
      groupId: 'dlq-reader',
      topics: [topicNames(t.config).dlq],
      handler: async (b) => void dlq.push(...b.messages.map((m) => m.value.toString())),
    });
    await post(
      JSON.stringify([
        ev(40, { type: 'bogus', props: { text: 'my secret words', email: 'jane@example.com' } }),
      ]),
    );
    const end = Date.now() + 5000;
    while (!dlq.some((d) => d.includes('bogus')) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 20));
    await sub.stop();
    const entry = dlq.find((d) => d.includes('bogus'))!;
    expect(JSON.parse(entry)).toMatchObject({
      source: 'api',
      index: 0,
      error: expect.stringMatching(/unknown event type/),
    });
    expect(entry).not.toMatch(/secret words|jane@example/);
  });

  it.each([
    ['malformed JSON', '[{"event_id": ', 'application/json', 400, 'PARLEY_ERR_INVALID_JSON'],
    [
      'a JSON object instead of an array',
      JSON.stringify(ev(50)),
      'application/json',
      400,
      'PARLEY_ERR_BAD_REQUEST',
    ],
    ['an empty array', '[]', 'application/json', 400, 'PARLEY_ERR_BAD_REQUEST'],
    [
      'a wrong content type',
      JSON.stringify([ev(51)]),
      'text/plain',
      415,
      'PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE',
    ],
    ['no content type', JSON.stringify([ev(51)]), '', 415, 'PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE'],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from('[{"event_id":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]')]),
      'application/json',
      400,
      'PARLEY_ERR_INVALID_UTF8',
    ],
    [
      'an oversized body',
      JSON.stringify(Array.from({ length: 2000 }, (_, i) => ev(i))),
      'application/json',
      413,
      'PARLEY_ERR_PAYLOAD_TOO_LARGE',
    ],
  ])('answers %s with a clear 4xx', async (_name, body, type, status, code) => {
    const res = await post(body as string, { type: type as string });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ error: code, message: expect.any(String) });
  });

  it('needs an ingest key: 401 without or with an unknown key, 403 with another role', async () => {
    const body = JSON.stringify([ev(60)]);
    expect((await post(body, { key: null })).statusCode).toBe(401);
    expect((await post(body, { key: 'pk_not_a_key_at_all_1234' })).json()).toMatchObject({
      error: 'PARLEY_ERR_UNAUTHORIZED',
    });
    const res = await post(body, { key: t.keys.analyst });
    expect(res.statusCode).toBe(403);
    expect(res.json().message).toMatch(/role ingest/);
    expect((await post(body, { key: t.keys.admin })).statusCode).toBe(202);
  });

  it('answers 503 and acknowledges nothing when the bus cannot take the batch', async () => {
    failing = true;
    const res = await post(JSON.stringify([ev(70, { event_id: 'never-acked' })]));
    failing = false;
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toMatchObject({ error: 'PARLEY_ERR_BUS_UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 200));
    expect(await storedCount("event_id = 'never-acked'")).toBe(0);
  });
});

describe('sink', () => {
  it('sets aside a message ClickHouse cannot read and stores the rest of its batch', async () => {
    const good = {
      ...ev(90, { event_id: 'after-poison' }),
      occurred_at: new Date().toISOString(),
      thread_id: 't',
      props: {},
    };
    // Other users' events land on other partitions, whose batches share the sink's insert with
    // the poisoned one: they are stored too.
    const others = Array.from({ length: 8 }, (_, i) => ({
      ...good,
      event_id: `beside-poison-${i}`,
      user_id: `u_other_${i}`,
    }));
    await t.bus.publish(topicNames(t.config).events, [
      { key: 'u', value: '{"event_id": "poison", "occurred_at": "not a time"' },
      { key: 'u', value: JSON.stringify(good) },
      ...others.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
    ]);
    await waitStored(1, "event_id = 'after-poison'");
    await waitStored(8, "startsWith(event_id, 'beside-poison-')");
    expect(await storedCount("event_id = 'poison'")).toBe(0);
  });
});

describe('GET /v1/events', () => {
  it('limits a business-scoped key to its businesses', async () => {
    await post(JSON.stringify([ev(80, { business_id: 'b2', event_id: 'other-biz' })]));
    await waitStored(1, "event_id = 'other-biz'");
    const scoped = await t.app.inject({
      url: '/v1/events?limit=1000',
      headers: { authorization: `Bearer ${t.keys.analystB1}` },
    });
    expect(scoped.json().events.every((e: { business_id: string }) => e.business_id === 'b1')).toBe(true);
    const forbidden = await t.app.inject({
      url: '/v1/events?business_id=b2',
      headers: { authorization: `Bearer ${t.keys.analystB1}` },
    });
    expect(forbidden.statusCode).toBe(403);
  });

  it('answers bad query parameters with 400', async () => {
    const auth = { authorization: `Bearer ${t.keys.analyst}` };
    for (const q of ['limit=0', 'limit=abc', 'from=yesterday', 'type=nope', 'cursor=zzz']) {
      const res = await t.app.inject({ url: `/v1/events?${q}`, headers: auth });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error).toMatch(/^PARLEY_ERR_/);
    }
  });

  it('serves health, metrics and the OpenAPI document', async () => {
    expect((await t.app.inject({ url: '/healthz' })).json()).toMatchObject({
      status: 'ok',
      store: 'embedded',
      bus: 'local',
    });
    expect((await t.app.inject({ url: '/metrics' })).statusCode).toBe(401);
    const metrics = await t.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${t.keys.admin}` },
    });
    expect(metrics.body).toMatch(/parley_ingest_events_accepted_total\{source="api"\} \d+/);
    const doc = (await t.app.inject({ url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/events']));
    expect(doc.paths['/v1/events'].post.responses['202']).toBeDefined();
    const page = await t.app.inject({ url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
  });
});
