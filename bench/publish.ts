// Durable publishes on the embedded log, one event per publish (as a decision publishes its
// sponsored.served), from N concurrent callers, against a baseline measured in the same run: the
// same bytes appended with O_DSYNC writes to one file by the same number of callers, with no
// grouping. Prints publishes/s and the process's CPU per publish (user and system).
//
//   node bench/run.js publish [--events 30000] [--concurrency 10] [--partitions 4]

import { constants } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalBus } from '../core/bus/local.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import { EventFeed } from '../core/events/feed.ts';
import { createLogger } from '../core/log.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '30000' },
    concurrency: { type: 'string', default: '10' },
    partitions: { type: 'string', default: '4' },
  },
});
const N = Number(values.events);
const C = Number(values.concurrency);
const P = Number(values.partitions);

const event = (i: number): CanonicalEvent => ({
  event_id: `ev_${i}`,
  type: 'sponsored.served',
  occurred_at: new Date().toISOString(),
  business_id: 'biz_bench',
  user_id: `u_${i % 100_000}`,
  thread_id: `t_biz_bench_u_${i % 100_000}`,
  channel: 'webchat',
  props: { decision_id: `d_${i}`, campaign_id: 'cmp_1', creative_id: 'cmp_1', price_micros: 1000 },
});

async function measure(run: (i: number) => Promise<void>) {
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) await run(next++);
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { rate: N / secs, user: cpu.user / N, system: cpu.system / N };
}

const dir = await mkdtemp(join(tmpdir(), 'parley-bench-publish-'));
try {
  const fh = await open(
    join(dir, 'baseline.log'),
    constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC,
  );
  const base = await measure(async (i) => {
    await fh.writev([Buffer.from(JSON.stringify(event(i)))]);
  });
  await fh.close();

  const bus = await createLocalBus({ dir: join(dir, 'log'), logger: createLogger({ level: 'silent' }) });
  await bus.ensureTopics([{ name: 'events', partitions: P }]);
  const feed = new EventFeed(bus);
  const log = await measure((i) => feed.publish('events', [event(i)]));
  await bus.close();

  const row = (name: string, r: typeof base) => [
    name,
    Math.round(r.rate),
    r.user.toFixed(1),
    r.system.toFixed(1),
    (r.rate / base.rate).toFixed(2),
  ];
  printTable(`durable publishes of one event, ${N} events, ${C} concurrent callers`, [
    ['run', 'per s', 'CPU user µs', 'CPU system µs', 'ratio'],
    row('baseline: O_DSYNC append to one file, no grouping', base),
    row(`embedded log: publish to ${P} partition(s), group commit`, log),
  ]);
} finally {
  await rm(dir, { recursive: true, force: true });
}
