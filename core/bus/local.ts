import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { PartitionLog } from './partition-log.ts';
import type { Batch, Bus, OutMessage, SubscribeOptions, Subscription, TopicSpec } from './types.ts';

// The embedded bus: durable topics under <dataDir>/log, for one process. Same contract as the
// Kafka adapter: ordered per key, committed offsets per consumer group, replay after a crash.

export type LocalBusOptions = {
  dir: string;
  logger: Logger;
  retentionMs?: number;
  retentionBytes?: number;
  segmentBytes?: number;
};

type Topic = { name: string; partitions: PartitionLog[] };

const safe = (s: string) => encodeURIComponent(s);

export function partitionFor(key: string, partitions: number): number {
  // FNV-1a: cheap and stable across restarts.
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % partitions;
}

export async function createLocalBus(opts: LocalBusOptions): Promise<Bus> {
  const log = opts.logger.child({ component: 'bus', kind: 'local' });
  const topics = new Map<string, Topic>();
  const groupsDir = join(opts.dir, '_groups');
  await mkdir(groupsDir, { recursive: true });
  const active = new Set<string>();
  const subs = new Set<Subscription>();
  const retention = setInterval(() => void applyRetention(), 60_000).unref();

  async function openTopic(name: string, partitions: number): Promise<Topic> {
    const dir = join(opts.dir, safe(name));
    await mkdir(dir, { recursive: true });
    const metaPath = join(dir, 'topic.json');
    const meta = await readFile(metaPath, 'utf8').then(JSON.parse, () => null);
    const n = meta?.partitions ?? partitions;
    if (!meta) await writeFile(metaPath, JSON.stringify({ partitions: n }));
    const parts = await Promise.all(
      Array.from({ length: n }, (_, p) =>
        PartitionLog.open({
          dir: join(dir, String(p)),
          topic: name,
          partition: p,
          segmentBytes: opts.segmentBytes,
          onTruncate: (i) => log.warn(i, 'cut a torn record at the tail of the log'),
        }),
      ),
    );
    const t = { name, partitions: parts };
    topics.set(name, t);
    return t;
  }

  // Topics created in an earlier run are opened at start, so replays find them.
  for (const d of await readdir(opts.dir)) {
    if (d.startsWith('_')) continue;
    const meta = await readFile(join(opts.dir, d, 'topic.json'), 'utf8').then(JSON.parse, () => null);
    if (meta) await openTopic(decodeURIComponent(d), meta.partitions);
  }

  async function applyRetention() {
    for (const t of topics.values()) {
      for (const p of t.partitions) {
        const n = await p.applyRetention(
          opts.retentionMs ?? 7 * 86400_000,
          opts.retentionBytes ?? 10 * 1024 ** 3,
        );
        if (n > 0) log.info({ topic: t.name, segments: n }, 'retention removed old segments');
      }
    }
  }

  function topic(name: string): Topic {
    const t = topics.get(name);
    if (!t) throw new ParleyError('PARLEY_ERR_BAD_REQUEST', `unknown topic ${name}`);
    return t;
  }

  const groupFile = (groupId: string) => join(groupsDir, `${safe(groupId)}.json`);
  async function readCommitted(groupId: string): Promise<Record<string, string>> {
    return readFile(groupFile(groupId), 'utf8').then(JSON.parse, () => ({}));
  }
  async function writeCommitted(groupId: string, offsets: Record<string, string>) {
    const path = groupFile(groupId);
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(offsets));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  }

  const bus: Bus = {
    kind: 'local',

    async ensureTopics(specs: TopicSpec[]) {
      for (const s of specs) if (!topics.has(s.name)) await openTopic(s.name, s.partitions ?? 1);
    },

    async publish(name: string, messages: OutMessage[]) {
      const t = topic(name);
      const now = Date.now();
      const byPart = new Map<number, OutMessage[]>();
      for (const m of messages) {
        const p = t.partitions.length === 1 ? 0 : partitionFor(m.key, t.partitions.length);
        const list = byPart.get(p);
        if (list) list.push(m);
        else byPart.set(p, [m]);
      }
      try {
        await Promise.all([...byPart].map(([p, list]) => t.partitions[p].append(list, now)));
      } catch (err) {
        throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err });
      }
    },

    async subscribe(o: SubscribeOptions): Promise<Subscription> {
      for (const tn of o.topics) {
        const key = `${o.groupId}\u0000${tn}`;
        if (active.has(key)) throw new Error(`group ${o.groupId} already consumes ${tn} in this process`);
        active.add(key);
      }
      const committed = await readCommitted(o.groupId);
      const abort = new AbortController();
      // Commits from concurrent partition loops are serialised through one writer.
      let commitChain = Promise.resolve();
      const commit = (k: string, off: bigint) => {
        committed[k] = off.toString();
        const snapshot = { ...committed };
        commitChain = commitChain.then(() => writeCommitted(o.groupId, snapshot));
        return commitChain;
      };
      // One process: this member holds every partition, always.
      o.onAssign?.(new Map(o.topics.map((tn) => [tn, topic(tn).partitions.map((_, p) => p)])));
      const loops: Promise<void>[] = [];
      for (const tn of o.topics) {
        const t = topic(tn);
        t.partitions.forEach((plog, p) => {
          const k = `${tn}/${p}`;
          let next =
            committed[k] !== undefined
              ? BigInt(committed[k])
              : o.start === 'latest'
                ? plog.endOffset
                : plog.startOffset;
          loops.push(
            (async () => {
              let backoff = 100;
              const maxBatch = o.maxBatchSize ?? 1000;
              while (!abort.signal.aborted) {
                let recs = await plog.read(next, maxBatch);
                if (recs.length === 0) {
                  await plog.waitForData(1000, abort.signal);
                  continue;
                }
                if (recs.length < maxBatch && o.maxWaitMs) {
                  const deadline = Date.now() + o.maxWaitMs;
                  const idle = o.maxIdleMs ?? o.maxWaitMs;
                  while (
                    plog.endOffset - next < BigInt(maxBatch) &&
                    Date.now() < deadline &&
                    !abort.signal.aborted
                  ) {
                    const end = plog.endOffset;
                    await plog.waitForData(Math.min(deadline - Date.now(), idle), abort.signal);
                    if (plog.endOffset === end) break; // nothing arrived for `idle` ms (or the wait ended)
                  }
                  recs = await plog.read(next, maxBatch);
                }
                const batch: Batch = {
                  topic: tn,
                  partition: p,
                  messages: recs,
                };
                try {
                  const done = await o.handler(batch, { heartbeat: async () => {}, signal: abort.signal });
                  const n = typeof done === 'number' ? Math.min(done, recs.length) : recs.length;
                  if (n > 0) {
                    next = recs[n - 1].offset + 1n;
                    await commit(k, next);
                  }
                  backoff = 100;
                } catch (err) {
                  if (abort.signal.aborted) break;
                  log.warn(
                    { err, group: o.groupId, topic: tn, partition: p, retryInMs: backoff },
                    'batch failed; retrying',
                  );
                  await new Promise((r) => setTimeout(r, backoff));
                  backoff = Math.min(backoff * 2, 5000);
                }
              }
            })(),
          );
        });
      }
      const sub: Subscription = {
        ready: Promise.resolve(),
        async stop() {
          abort.abort();
          await Promise.allSettled(loops);
          await commitChain;
          for (const tn of o.topics) active.delete(`${o.groupId}\u0000${tn}`);
          subs.delete(sub);
        },
      };
      subs.add(sub);
      return sub;
    },

    async partitioner(tn: string) {
      const n = topic(tn).partitions.length;
      return (key: string) => (n === 1 ? 0 : partitionFor(key, n));
    },

    async lag(groupId: string, tn: string) {
      const committed = await readCommitted(groupId);
      return topic(tn).partitions.map((plog, p) => ({
        partition: p,
        committed: BigInt(committed[`${tn}/${p}`] ?? plog.startOffset),
        end: plog.endOffset,
      }));
    },

    async deleteGroup(groupId: string) {
      await rm(groupFile(groupId), { force: true });
    },

    async close() {
      clearInterval(retention);
      for (const s of [...subs]) await s.stop();
      for (const t of topics.values()) for (const p of t.partitions) await p.close();
    },
  };
  return bus;
}
