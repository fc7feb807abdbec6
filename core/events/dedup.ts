import type { InMessage } from '../bus/types.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/client.ts';
import { idOf } from './decoded.ts';

// One event per event_id, the first accepted copy (docs/ingest.md, "Duplicates"). Every consumer of
// the events topic reads each partition in the same order, so within a partition each decides the
// same copy is first by itself: the lowest offset. What it cannot see (copies before a restart,
// copies further apart than it remembers, copies under another user_id on another partition) is
// answered by the event_ids registry, where the sink records the position of every first copy it
// stores. A filter of the registered ids in memory keeps the registry out of the path of new ids:
// only ids the filter may hold (duplicates and about 1% of the rest) are looked up, one query
// per batch at most.

/**
 * Where a copy sits on the bus, as one number (partition × 10^12 + offset: exact while partitions
 * stay under 9,000 and offsets under 10^12). Computed, never stored on the shared message.
 */
const positionOf = (m: InMessage): number => m.partition * 1e12 + Number(m.offset);
const position = (partition: number, offset: bigint | number) => partition * 1e12 + Number(offset);

const mix = (h: number) => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
};

/**
 * A Bloom filter of ids: `has` is never wrong for an added id, and rarely right for another.
 * Blocked: an id's probes all fall in one 512-bit block, so a check costs one cache miss.
 */
export class IdFilter {
  private readonly bits: Uint32Array;
  private readonly blocks: number;
  constructor(expectedIds: number) {
    // About 10 bits per id and 6 probes: 1-2% false positives at the expected count.
    const log2 = Math.min(30, Math.max(16, Math.ceil(Math.log2(expectedIds * 10))));
    this.bits = new Uint32Array(2 ** (log2 - 5));
    this.blocks = 2 ** (log2 - 9);
  }
  private probe(id: string, set: boolean): boolean {
    let h = 0x811c9dc5;
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
    const base = (mix(h) % this.blocks) * 16;
    let b = mix(h ^ 0x9747b28c);
    let c = mix(h ^ 0x5bd1e995);
    let all = true;
    for (let i = 0; i < 6; i++, b >>>= 5, c >>>= 4) {
      // 9 bits choose a bit of the block: 5 from b, 4 from c.
      const bit = (b & 31) | ((c & 15) << 5);
      const word = base + (bit >>> 5);
      const flag = 1 << (bit & 31);
      if ((this.bits[word] & flag) === 0) {
        all = false;
        if (!set) return false;
        this.bits[word] |= flag;
      }
    }
    return all;
  }
  add(id: string) {
    this.probe(id, true);
  }
  has(id: string): boolean {
    return this.probe(id, false);
  }
}

/** The positions of the first copies of recently seen ids, the oldest forgotten beyond a bound. */
export class RecentIds {
  private readonly map = new Map<string, number>();
  constructor(private readonly max: number) {}
  get(id: string) {
    return this.map.get(id);
  }
  set(id: string, at: number) {
    this.map.set(id, at);
  }
  /** Records m's position for its id unless a copy was seen before; true if m is the first seen. */
  note(id: string, m: InMessage): boolean {
    const seen = this.map.get(id);
    if (seen === undefined) {
      this.map.set(id, positionOf(m));
      return true;
    }
    return seen === positionOf(m);
  }
  trim() {
    if (this.map.size <= this.max) return;
    for (const id of this.map.keys()) {
      if (this.map.size <= this.max) break;
      this.map.delete(id);
    }
  }
}

/** Whether m is the first copy of its event as far as a bounded memory of the partitions read can tell. */
export function isFirstSeen(recent: RecentIds, m: InMessage): boolean {
  const id = idOf(m);
  return id === undefined || recent.note(id, m);
}

export type Dedup = {
  /** The messages of a batch that are first copies of their event, in order (ids unreadable pass). */
  firstCopies(messages: readonly InMessage[]): Promise<InMessage[]>;
  /** Records these first copies in the registry (the sink, as it stores them). */
  register(firsts: readonly InMessage[]): Promise<void>;
};

export type DedupIndex = {
  /** Adds the ids registered since the last refresh to the filter (all of them the first time). */
  refresh(): Promise<void>;
  /** Refreshes every intervalMs (a process whose sink does not hold every partition). */
  refreshEvery(intervalMs: number): void;
  /** A checker for one consumer group; `onDuplicates` counts the copies it skips. */
  forStage(onDuplicates: (n: number) => void): Dedup;
  close(): void;
};

export function createDedupIndex(deps: {
  store: Store;
  logger: Logger;
  /** Ids the filter is sized for (1% false positives at that count; more only cost lookups). */
  expectedIds?: number;
  /** First copies the process remembers (shared by its processors). */
  recentIds?: number;
}): DedupIndex {
  const { store } = deps;
  const log = deps.logger.child({ component: 'dedup' });
  const table = `${store.database}.event_ids`;
  const filter = new IdFilter(deps.expectedIds ?? 8_000_000);
  // Shared by the stages of this process: they read the same partitions in the same order, so the
  // first copy one of them saw is the first for all (and each id is checked against the filter once).
  const recent = new RecentIds(deps.recentIds ?? 500_000);
  let since = 0; // store time (ms) from which the next refresh reads registrations
  let refreshing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function load() {
    const clock = await store.client.query({
      query: 'SELECT toUnixTimestamp64Milli(now64(3)) AS t',
      format: 'JSONEachRow',
    });
    const [{ t }] = await clock.json<{ t: number | string }>();
    const rs = await store.client.query({
      query: `SELECT event_id FROM ${table} WHERE registered_at >= fromUnixTimestamp64Milli({since:Int64})`,
      query_params: { since },
      format: 'JSONCompactEachRow',
    });
    let n = 0;
    for await (const rows of rs.stream()) {
      for (const r of rows) filter.add((r.json() as [string])[0]);
      n += rows.length;
    }
    // Registrations committed while this ran are read again next time, never missed.
    since = Number(t) - 60_000;
    log.debug({ ids: n }, 'event ids loaded');
  }

  /** The registry's first copy of each id that has one. */
  async function lookup(ids: string[]): Promise<[string, number][]> {
    const rs = await store.client.query({
      query: `SELECT event_id, toString(argMin((bus_partition, bus_offset), (accepted_at, bus_partition, bus_offset))) AS first
FROM ${table} WHERE event_id IN {ids:Array(String)} GROUP BY event_id`,
      query_params: { ids },
      format: 'JSONCompactEachRow',
    });
    const out: [string, number][] = [];
    for (const [id, first] of await rs.json<[string, string]>()) {
      const [p, o] = first.replace(/[()]/g, '').split(',');
      out.push([id, position(Number(p), BigInt(o))]);
    }
    return out;
  }

  return {
    refresh() {
      // One at a time, each reading from where the last one started: a caller waiting for
      // registrations made just now never gets an older refresh's answer.
      const next = (refreshing ?? Promise.resolve()).then(load, load);
      refreshing = next;
      return next;
    },
    refreshEvery(intervalMs) {
      timer ??= setInterval(() => {
        this.refresh().catch((err) => log.warn({ err }, 'refreshing event ids failed; retrying'));
      }, intervalMs);
      timer.unref();
    },
    forStage(onDuplicates) {
      return {
        async firstCopies(messages) {
          // The stages of this process share `recent`: an id another stage has decided keeps its
          // answer. Ids the filter may hold are decided by the registry; the others by the first
          // sighting.
          let pending: Map<string, number> | undefined;
          for (const m of messages) {
            const id = idOf(m);
            if (id === undefined || recent.get(id) !== undefined || pending?.has(id)) continue;
            if (filter.has(id)) {
              pending ??= new Map();
              pending.set(id, positionOf(m));
            } else recent.set(id, positionOf(m));
          }
          if (pending) {
            for (const [id, first] of await lookup([...pending.keys()])) pending.set(id, first);
            // Another stage may have decided an id meanwhile, from the same registry.
            for (const [id, first] of pending) if (recent.get(id) === undefined) recent.set(id, first);
          }
          const out: InMessage[] = [];
          for (const m of messages) {
            const id = idOf(m);
            if (id === undefined || recent.get(id) === positionOf(m)) out.push(m);
          }
          recent.trim();
          if (out.length < messages.length) onDuplicates(messages.length - out.length);
          return out;
        },
        async register(firsts) {
          if (!firsts.length) return;
          // Written by hand (one line per id): only the id needs JSON escaping; the time goes as
          // decimal seconds, which the engine reads into DateTime64(3) exactly.
          let text = '';
          for (const m of firsts) {
            const id = idOf(m);
            if (id === undefined) continue;
            text += `{"event_id":${JSON.stringify(id)},"bus_partition":${m.partition},"bus_offset":${m.offset},"accepted_at":"${m.timestamp / 1000}"}\n`;
          }
          await store.insertJsonLines(table, Buffer.from(text), { date_time_input_format: 'best_effort' });
          for (const m of firsts) {
            const id = idOf(m);
            if (id !== undefined) filter.add(id);
          }
        },
      };
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
