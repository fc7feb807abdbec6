import { mkdir, open, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { PartitionLog } from './partition-log.ts';
import type {
  Batch,
  Bus,
  OutMessage,
  ReadFrom,
  ReadOptions,
  Reader,
  SubscribeOptions,
  Subscription,
  TopicSpec,
} from './types.ts';

// The embedded bus: durable topics under <dataDir>/log, for one process. Same contract as the
// Kafka adapter: ordered per key, committed offsets per consumer group, replay after a crash, and
// ungrouped reads that commit nothing.

export type LocalBusOptions = {
  dir: string;
  logger: Logger;
  retentionMs?: number;
  retentionBytes?: number;
  segmentBytes?: number;
  /**
   * Within a reader's maxWaitMs, a batch still filling is handed over once nothing new has reached
   * its partition for this long, so the end of a burst is handed over at once instead of after the
   * whole wait (default 50 ms).
   */
  batchIdleMs?: number;
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
  const readers = new Set<Reader>();
  const retention = setInterval(() => void applyRetention(), 60_000).unref();
  const batchIdleMs = opts.batchIdleMs ?? 50;

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

  async function startOf(plog: PartitionLog, p: number, from: ReadFrom): Promise<bigint> {
    if (from === 'earliest') return plog.startOffset;
    if (from === 'latest') return plog.endOffset;
    if ('timestamp' in from) return plog.offsetForTimestamp(from.timestamp);
    let at = from.offsets.get(p) ?? plog.startOffset;
    if (at < plog.startOffset) at = plog.startOffset;
    if (at > plog.endOffset) at = plog.endOffset;
    return at;
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

  /**
   * Hands one partition's records to a handler in batches from `from` on, until the signal aborts;
   * `advance` hears each offset reading has moved to (a subscription commits it).
   */
  async function consume(
    [tn, p, plog]: [string, number, PartitionLog],
    from: bigint,
    o: Pick<SubscribeOptions, 'handler' | 'maxBatchSize' | 'maxWaitMs'>,
    signal: AbortSignal,
    logFields: Record<string, unknown>,
    advance?: (next: bigint) => Promise<void>,
  ) {
    let next = from;
    let backoff = 100;
    const maxBatch = o.maxBatchSize ?? 1000;
    // The partition's read cache keeps what this loop has yet to read, and nothing once it stops.
    const cursor = plog.follow(from);
    try {
      while (!signal.aborted) {
        let recs = await plog.read(next, maxBatch);
        if (recs.length === 0) {
          await plog.waitForData(1000, signal);
          continue;
        }
        if (recs.length < maxBatch && o.maxWaitMs) {
          const deadline = Date.now() + o.maxWaitMs;
          const idle = Math.min(batchIdleMs, o.maxWaitMs);
          while (plog.endOffset - next < BigInt(maxBatch) && Date.now() < deadline && !signal.aborted) {
            const end = plog.endOffset;
            await plog.waitForData(Math.min(deadline - Date.now(), idle), signal);
            if (plog.endOffset === end) break; // nothing arrived for `idle` ms (or the wait ended)
          }
          recs = await plog.read(next, maxBatch);
        }
        const batch: Batch = { topic: tn, partition: p, messages: recs };
        try {
          const done = await o.handler(batch, { heartbeat: async () => {}, signal });
          const n = typeof done === 'number' ? Math.min(done, recs.length) : recs.length;
          if (n > 0) {
            next = recs[n - 1].offset + 1n;
            plog.advance(cursor, next);
            await advance?.(next);
          }
          backoff = 100;
        } catch (err) {
          if (signal.aborted) break;
          log.warn(
            { err, ...logFields, topic: tn, partition: p, retryInMs: backoff },
            'batch failed; retrying',
          );
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    } finally {
      plog.unfollow(cursor);
    }
  }

  const bus: Bus = {
    async ensureTopics(specs: TopicSpec[]) {
      for (const s of specs) if (!topics.has(s.name)) await openTopic(s.name, s.partitions ?? 1);
    },

    async publish(name: string, messages: OutMessage[]) {
      const t = topic(name);
      const now = Date.now();
      const n = t.partitions.length;
      const parts = messages.map((m) => (n === 1 ? 0 : partitionFor(m.key, n)));
      const lists: OutMessage[][] = Array.from({ length: n }, () => []);
      for (let i = 0; i < messages.length; i++) lists[parts[i]].push(messages[i]);
      // Each partition's messages are appended in the order given, from its first offset on.
      const next: bigint[] = new Array(n);
      try {
        await Promise.all(
          lists.map(async (list, p) => {
            if (list.length > 0) next[p] = (await t.partitions[p].append(list, now)).first;
          }),
        );
      } catch (err) {
        throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err });
      }
      return parts.map((partition) => ({ partition, offset: next[partition]++ }));
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
        topic(tn).partitions.forEach((plog, p) => {
          const k = `${tn}/${p}`;
          const from =
            committed[k] !== undefined
              ? BigInt(committed[k])
              : o.start === 'latest'
                ? plog.endOffset
                : plog.startOffset;
          loops.push(
            consume([tn, p, plog], from, o, abort.signal, { group: o.groupId }, (next) => commit(k, next)),
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

    async read(o: ReadOptions): Promise<Reader> {
      const parts = topic(o.topic).partitions;
      const starts = await Promise.all(parts.map((plog, p) => startOf(plog, p, o.from)));
      const abort = new AbortController();
      const loops = parts.map((plog, p) => consume([o.topic, p, plog], starts[p], o, abort.signal, {}));
      const reader: Reader = {
        ready: Promise.resolve(),
        async stop() {
          abort.abort();
          await Promise.allSettled(loops);
          readers.delete(reader);
        },
      };
      readers.add(reader);
      return reader;
    },

    async offsets(tn: string) {
      return topic(tn).partitions.map((plog, partition) => ({
        partition,
        start: plog.startOffset,
        end: plog.endOffset,
      }));
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

    async close() {
      clearInterval(retention);
      for (const s of [...subs]) await s.stop();
      for (const r of [...readers]) await r.stop();
      for (const t of topics.values()) for (const p of t.partitions) await p.close();
    },
  };
  return bus;
}
