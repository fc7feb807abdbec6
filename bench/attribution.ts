// What the attribution processor's store calls cost per event: the ingest bench's traffic (the
// simulator, unique ids) fed to the processor in batches of the size it sees during
// `bench/run.js ingest`, with the process's CPU time (all threads) and wall time around each
// call to the store, by call.
//
//   node bench/run.js attribution [--events 200000] [--batch 8700]

import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLocalBus } from '../core/bus/local.ts';
import { EventMessage } from '../core/events/message.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import { createAttributionProcessor } from '../processors/attribution.ts';
import { createPipeline } from '../processors/pipeline.ts';
import { benchStore } from './store.ts';
import { printTable } from './table.ts';
import { canonicalEvents } from './traffic.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '8700' },
  },
});
const N = Number(values.events);
const BATCH = Number(values.batch);

const now = Date.now();
const run = `a${now.toString(36)}`;
const messages = canonicalEvents(N, 'bench-ingest', (i) => `${run}-${i}`, now).map(
  (e, i) =>
    new EventMessage({
      topic: 'parley.events',
      partition: 0,
      offset: BigInt(i),
      key: e.user_id,
      value: Buffer.from(JSON.stringify(e)),
      timestamp: now,
      headers: {},
    }),
);

const { store, dataDir } = await benchStore('attribution');
const logger = createLogger({ level: 'silent' });
const metrics = createMetrics();
const bus = await createLocalBus({ dir: `${dataDir}/bus`, logger });
await bus.ensureTopics([{ name: 'parley.events.dlq' }]);
const pipeline = createPipeline({ store, bus, logger, metrics, dlqTopic: 'parley.events.dlq' });

// Every store call the processor makes, timed by what it does.
const cost = new Map<string, { calls: number; cpu: number; wall: number }>();
const timed =
  <A extends unknown[], R>(label: (first: A[0]) => string, f: (...a: A) => Promise<R>) =>
  async (...a: A): Promise<R> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    try {
      return await f(...a);
    } finally {
      const c = process.cpuUsage(c0);
      const k = label(a[0]);
      const x = cost.get(k) ?? { calls: 0, cpu: 0, wall: 0 };
      x.calls++;
      x.cpu += (c.user + c.system) / 1e6;
      x.wall += (performance.now() - t0) / 1000;
      cost.set(k, x);
    }
  };
const probe = {
  ...store,
  insertJsonLines: timed((table: string) => `insert ${table.split('.').at(-1)}`, store.insertJsonLines),
  rows: timed(
    (s: { query: string }) => `query ${/FROM \S+\.(\w+)/.exec(s.query)?.[1] ?? '?'}`,
    store.rows,
  ) as typeof store.rows,
};
const processor = createAttributionProcessor({
  store: probe,
  logger,
  metrics,
  topic: 'parley.events',
  pipeline,
});
await processor.init?.();
const ctx = { heartbeat: async () => {}, signal: new AbortController().signal };
const c0 = process.cpuUsage();
for (let i = 0; i < messages.length; i += BATCH)
  await processor.handle(
    { topic: 'parley.events', partition: 0, messages: messages.slice(i, i + BATCH) },
    ctx,
  );
const all = process.cpuUsage(c0);
const per = (s: number) => ((s * 1e6) / messages.length).toFixed(2);
printTable(`attribution processor: ${messages.length} events in batches of ${BATCH}, embedded store`, [
  ['store call', 'calls', 'CPU µs/event', 'wall s'],
  ...[...cost].map(([k, x]) => [k, String(x.calls), per(x.cpu), x.wall.toFixed(2)]),
  ['whole handle(), all threads', '', per((all.user + all.system) / 1e6), ''],
]);
await bus.close();
await store.close();
await rm(dataDir, { recursive: true, force: true });
