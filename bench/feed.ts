// The event feed on the embedded log, as one process runs it: simulated events published in
// batches by concurrent callers and read by four consumers shaped like Parley's (a sink that needs
// each id, attribution and the decision engine that decode the types they use, segments reading
// ids), against a baseline measured in the same run: the same bus and consumers without the feed,
// each consumer parsing what it decodes itself. Prints the process's CPU per event and how many
// values the consumers parsed.
//
//   node bench/run.js feed [--events 100000] [--batch 1000] [--concurrency 4]

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalBus } from '../core/bus/local.ts';
import type { BatchContext, Bus, InMessage } from '../core/bus/types.ts';
import { EventFeed } from '../core/events/feed.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import { createLogger } from '../core/log.ts';
import { printTable } from './table.ts';
import { canonicalEvents } from './traffic.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '4' },
  },
});
const N = Number(values.events);
const BATCH = Number(values.batch);
const C = Number(values.concurrency);

const ATTRIBUTED = new Set(['sponsored.served', 'sponsored.clicked', 'referral', 'postback', 'order.placed']);
const ENGINE = new Set(['message.received', 'message.sent', 'optin', 'optout', 'sponsored.served']);

const now = Date.now();
const events = canonicalEvents(N, 'bench-feed', (i) => `f${i}`, now);

/** What a consumer reads of one message: its id, its type, its whole event. */
type Access = { readonly id: unknown; readonly type: string | undefined; event(): CanonicalEvent };
/** The four consumers, as Parley's read their messages. */
const consumers: {
  group: string | null;
  maxBatchSize: number;
  maxWaitMs: number;
  each: (a: Access) => void;
}[] = [
  { group: 'sink', maxBatchSize: 20_000, maxWaitMs: 500, each: (a) => void a.id },
  {
    group: 'attribution',
    maxBatchSize: 20_000,
    maxWaitMs: 1000,
    each: (a) => void (ATTRIBUTED.has(a.type ?? '') && a.event()),
  },
  { group: 'segments', maxBatchSize: 5000, maxWaitMs: 10, each: (a) => void a.id },
  {
    group: null,
    maxBatchSize: 5000,
    maxWaitMs: 5,
    each: (a) => void (ENGINE.has(a.type ?? '') && a.event()),
  },
];

async function run(withFeed: boolean): Promise<{ cpuUs: number; parses: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-feed-'));
  const bus: Bus = await createLocalBus({ dir, logger: createLogger({ level: 'silent' }) });
  await bus.ensureTopics([{ name: 'events', partitions: 4 }]);
  const feed = new EventFeed(bus);
  let parses = 0;
  const parse = (value: Buffer) => {
    parses++;
    return JSON.parse(value.toString('utf8')) as CanonicalEvent;
  };
  const got = consumers.map(() => 0);
  const stops: (() => Promise<void>)[] = [];
  for (const [k, c] of consumers.entries()) {
    const count = (n: number) => {
      got[k] += n;
    };
    const limits = { maxBatchSize: c.maxBatchSize, maxWaitMs: c.maxWaitMs };
    if (withFeed) {
      const handler = async (b: { messages: Access[] }) => {
        for (const m of b.messages) c.each(m);
        count(b.messages.length);
      };
      const s = c.group
        ? await feed.subscribe({ groupId: c.group, topics: ['events'], ...limits, handler })
        : await feed.read({ topic: 'events', from: 'earliest', ...limits, handler });
      stops.push(() => s.stop());
    } else {
      const handler = async (b: { messages: InMessage[] }, _ctx: BatchContext) => {
        for (const m of b.messages) {
          const e = parse(m.value);
          c.each({ id: e.event_id, type: e.type, event: () => e });
        }
        count(b.messages.length);
      };
      const s = c.group
        ? await bus.subscribe({ groupId: c.group, topics: ['events'], ...limits, handler })
        : await bus.read({ topic: 'events', from: 'earliest', ...limits, handler });
      stops.push(() => s.stop());
    }
  }
  const realParse = JSON.parse;
  if (withFeed)
    JSON.parse = ((text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
      parses++;
      return realParse(text, reviver);
    }) as typeof JSON.parse;
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) {
        const slice = events.slice(next, next + BATCH);
        next += BATCH;
        if (withFeed) await feed.publish('events', slice);
        else
          await bus.publish(
            'events',
            slice.map((e) => ({ key: e.user_id, value: JSON.stringify(e) })),
          );
      }
    }),
  );
  while (got.some((n) => n < events.length)) await new Promise((r) => setTimeout(r, 5));
  const cpu = process.cpuUsage(cpu0);
  JSON.parse = realParse;
  for (const stop of stops) await stop();
  await bus.close();
  await rm(dir, { recursive: true, force: true });
  return { cpuUs: (cpu.user + cpu.system) / events.length, parses };
}

const base = await run(false);
const fed = await run(true);
printTable(`event feed: ${events.length} events, batches of ${BATCH}, ${C} publishers, 4 consumers`, [
  ['run', 'CPU µs/event', 'values parsed', 'ratio'],
  ['baseline: bus, each consumer parses', base.cpuUs.toFixed(2), base.parses, '1.00'],
  ['event feed', fed.cpuUs.toFixed(2), fed.parses, (base.cpuUs / fed.cpuUs).toFixed(2)],
]);
