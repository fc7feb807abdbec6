// What registering first copies in event_ids costs the embedded engine, next to the events insert
// itself, for the ways it can be written (docs/ingest.md, "Duplicates"): the sink's two inserts
// side by side, and one insert into a Null table whose materialized views fill both tables. The
// rows are encoded before the clock starts; each way runs in a process of its own on a fresh
// store, and the table shows the CPU of every thread per row, by thread.
//
//   node bench/run.js registry [--rows 200000] [--batch 20000]

import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { spawnIn } from '../test/helpers/process.ts';
import { cpuByThread } from './cpu.ts';
import { benchStore, createFanOut } from './store.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '20000' },
    way: { type: 'string' },
  },
});
const ROWS = Number(values.rows);
const BATCH = Number(values.batch);

const WAYS = {
  events: 'insert into events alone',
  both: 'insert into events and register at once (the sink)',
  fanout: 'one insert into a Null table fanned out to both',
} as const;
type Way = keyof typeof WAYS;

async function measure(way: Way): Promise<Record<string, number>> {
  const { store, dataDir } = await benchStore('registry');
  const db = store.database;
  const t0 = Date.now();
  const json = (i: number, extra = '') =>
    `{${extra}"event_id":"r${t0.toString(36)}-${i}","type":"message.received","occurred_at":"${new Date(t0 - i * 1000).toISOString()}","business_id":"b${i % 50}","user_id":"u${i % 5000}","thread_id":"t${i % 5000}","channel":"whatsapp","props":{"text_length":${i % 90}}}\n`;
  const batches: { events: Buffer; ids: Buffer }[] = [];
  for (let from = 0; from < ROWS; from += BATCH) {
    let events = '';
    let ids = '';
    for (let i = from; i < Math.min(ROWS, from + BATCH); i++) {
      const at = `${(t0 + i) / 1000}`;
      events +=
        way === 'fanout' ? json(i, `"bus_partition":0,"bus_offset":${i},"accepted_at":"${at}",`) : json(i);
      ids += `r${t0.toString(36)}-${i}\t0\t${i}\t${at}\n`;
    }
    batches.push({ events: Buffer.from(events), ids: Buffer.from(ids) });
  }
  const settings = {
    input_format_json_read_objects_as_strings: 1,
    input_format_skip_unknown_fields: 1,
    date_time_input_format: 'best_effort',
    optimize_on_insert: 0,
  };
  const fanOut = way === 'fanout' ? await createFanOut(store) : '';
  const before = cpuByThread(process.pid);
  for (const b of batches) {
    if (way === 'fanout') await store.insertJsonLines(fanOut, b.events, settings);
    else
      await Promise.all([
        store.insertJsonLines(`${db}.events`, b.events, settings),
        way === 'both'
          ? store.insertTsv(
              `${db}.event_ids`,
              ['event_id', 'bus_partition', 'bus_offset', 'accepted_at'],
              b.ids,
              {
                date_time_input_format: 'best_effort',
                optimize_on_insert: 0,
              },
            )
          : null,
      ]);
  }
  // The merges the inserts started run on for a moment: counted too.
  await new Promise((r) => setTimeout(r, 2000));
  const after = cpuByThread(process.pid);
  const [{ e, i }] = await store.rows<{ e: number; i: number }>({
    query: `SELECT (SELECT count() FROM ${db}.events) AS e, (SELECT count() FROM ${db}.event_ids) AS i`,
  });
  if (Number(e) !== ROWS || Number(i) !== (way === 'events' ? 0 : ROWS))
    throw new Error(`${way}: stored ${e} events and ${i} ids of ${ROWS}`);
  await store.close();
  await rm(dataDir, { recursive: true, force: true });
  return Object.fromEntries([...after].map(([name, secs]) => [name, secs - (before.get(name) ?? 0)]));
}

if (values.way) {
  console.log(JSON.stringify(await measure(values.way as Way)));
  process.exit(0);
}

const rows: string[][] = [];
for (const way of Object.keys(WAYS) as Way[]) {
  const child = spawnIn(
    'node',
    ['bench/run.js', 'registry', '--way', way, '--rows', String(ROWS), '--batch', String(BATCH)],
    {},
  );
  if ((await child.exited) !== 0) throw new Error(`${way} failed: ${child.stderr()}`);
  const threads = JSON.parse(child.stdout().trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
  const us = (secs: number) => ((secs * 1e6) / ROWS).toFixed(1);
  const total = Object.values(threads).reduce((a, b) => a + b, 0);
  const byThread = Object.entries(threads)
    .filter(([, secs]) => (secs * 1e6) / ROWS >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([name, secs]) => `${name} ${us(secs)}`)
    .join(', ');
  rows.push([WAYS[way], us(total), byThread]);
}
printTable(`registry: ${ROWS} rows in inserts of ${BATCH}, embedded engine, CPU µs per row`, [
  ['way', 'all threads', 'by thread'],
  ...rows,
]);
