import type { EventMessage } from './message.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/client.ts';
import { Verdicts } from './verdicts.ts';

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
const positionOf = (m: EventMessage): number => m.partition * 1e12 + Number(m.offset);
const position = (partition: number, offset: bigint | number) => partition * 1e12 + Number(offset);

const mix = (h: number) => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
};

// An id is known in memory by a 64-bit hash (two independent 32-bit halves), never as a string: the
// memories below hold no objects for the garbage collector to trace, and a message's id is hashed
// from its bytes without making a string. Two different ids share a hash with probability 2^-64
// per pair: about 10^-13 for a new id against a memory of a million.
let H1 = 0;
let H2 = 0;
const PREFIX = Buffer.from('{"event_id":"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Hashes the UTF-16 units of s into H1/H2 (for ASCII, the same as hashing its bytes). */
function hashChars(s: string) {
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  H1 = mix(a) | 0;
  H2 = mix(b ^ a) | 0;
}

/**
 * Where m's event id ends in its bytes (the index of its closing quote) when the value starts with
 * `{"event_id":"`, as every Parley producer writes it; -1 otherwise. `ascii` tells whether the id's
 * bytes are plain ASCII without escapes, so that they are the id itself.
 */
let ASCII = false;
function idEnd(buf: Buffer): number {
  const n = buf.length;
  if (n < PREFIX.length) return -1;
  for (let i = 0; i < PREFIX.length; i++) if (buf[i] !== PREFIX[i]) return -1;
  ASCII = true;
  for (let i = PREFIX.length; i < n; i++) {
    const c = buf[i];
    if (c === QUOTE) return i;
    if (c === BACKSLASH) {
      ASCII = false;
      i++;
    } else if (c > 0x7e) ASCII = false;
  }
  return -1;
}

/** Hashes the ASCII id ending at `end` in buf's bytes into H1/H2 (the same as hashChars of it). */
function hashBytes(buf: Buffer, end: number) {
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ (end - PREFIX.length);
  for (let i = PREFIX.length; i < end; i++) {
    const c = buf[i] as number;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  H1 = mix(a) | 0;
  H2 = mix(b ^ a) | 0;
}

/** Hashes m's event id into H1/H2; false when m has no readable id. */
function hashOf(m: EventMessage): boolean {
  const buf = m.value;
  const end = idEnd(buf);
  if (end >= 0 && ASCII) {
    hashBytes(buf, end);
    return true;
  }
  const id = m.id;
  if (id === undefined) return false;
  hashChars(id);
  return true;
}

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
  /** Probes for the id hashed in (h1, h2). */
  probe(h1: number, h2: number, set: boolean): boolean {
    const base = ((h1 >>> 0) % this.blocks) * 16;
    let b = mix(h2 ^ 0x9747b28c);
    let c = mix(h1 ^ h2 ^ 0x5bd1e995);
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
    hashChars(id);
    this.probe(H1, H2, true);
  }
  has(id: string): boolean {
    hashChars(id);
    return this.probe(H1, H2, false);
  }
}

/** One generation of remembered ids: open addressing over 16-byte slots (h1, h2, position). */
class Generation {
  readonly slots: Int32Array;
  readonly mask: number;
  size = 0;
  constructor(capacity: number) {
    // Zeroed memory is an empty table: pages the process never touches cost nothing.
    this.slots = new Int32Array(capacity * 4);
    this.mask = capacity - 1;
  }
  /** The slot of (h1, h2), or of the empty slot where it would go. */
  private slot(h1: number, h2: number): number {
    const s = this.slots;
    let i = h1 & this.mask;
    for (;;) {
      const at = i << 2;
      // A slot holds its position's high word plus one: 0 marks an empty slot.
      if (s[at + 2] === 0 || (s[at] === h1 && s[at + 1] === h2)) return at;
      i = (i + 1) & this.mask;
    }
  }
  find(h1: number, h2: number): number {
    const at = this.slot(h1, h2);
    const hi = this.slots[at + 2];
    return hi === 0 ? -1 : (hi - 1) * 4294967296 + (this.slots[at + 3] >>> 0);
  }
  put(h1: number, h2: number, position: number) {
    const at = this.slot(h1, h2);
    if (this.slots[at + 2] === 0) this.size++;
    this.slots[at] = h1;
    this.slots[at + 1] = h2;
    this.slots[at + 2] = Math.floor(position / 4294967296) + 1;
    this.slots[at + 3] = position >>> 0;
  }
  clear() {
    this.slots.fill(0);
    this.size = 0;
  }
}

/**
 * The positions of the first copies of recently seen ids. It remembers the last `max` ids at
 * least and twice that at most, in two generations: when the newer fills, the older is forgotten.
 * 16 MB for 500,000, and nothing the garbage collector traces.
 */
export class RecentIds {
  private current: Generation;
  private previous: Generation;
  private readonly perGeneration: number;
  constructor(max: number) {
    this.perGeneration = Math.max(1, max);
    // At most half full, so a probe rarely looks past its first slot.
    const capacity = 2 ** Math.ceil(Math.log2(this.perGeneration * 2));
    this.current = new Generation(capacity);
    this.previous = new Generation(capacity);
  }
  /** The first position remembered for the id hashed in (h1, h2), or -1. */
  find(h1: number, h2: number): number {
    const at = this.current.find(h1, h2);
    return at !== -1 ? at : this.previous.find(h1, h2);
  }
  put(h1: number, h2: number, position: number) {
    if (this.current.size >= this.perGeneration) {
      const old = this.previous;
      old.clear();
      this.previous = this.current;
      this.current = old;
    }
    this.current.put(h1, h2, position);
  }
  /** The first position remembered for an id, or undefined. */
  get(id: string): number | undefined {
    hashChars(id);
    const at = this.find(H1, H2);
    return at === -1 ? undefined : at;
  }
}

/** Whether m is the first copy of its event as far as a bounded memory of the partitions read can tell. */
export function isFirstSeen(recent: RecentIds, m: EventMessage): boolean {
  if (!hashOf(m)) return true;
  const seen = recent.find(H1, H2);
  if (seen === -1) {
    recent.put(H1, H2, positionOf(m));
    return true;
  }
  return seen === positionOf(m);
}

const TSV_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\\0',
};
const tsvEscape = (s: string) => s.replace(/[\\\t\n\r\0]/g, (c) => TSV_ESCAPES[c] as string);

const TAB = 0x09;
const NEWLINE = 0x0a;
const DOT = 0x2e;
const ZERO = 0x30;

/** Writes a non-negative integer's decimal digits at `at`; returns the end. */
function writeDigits(out: Buffer, at: number, value: number): number {
  let digits = 1;
  for (let v = value; v >= 10; v = Math.floor(v / 10)) digits++;
  let v = value;
  for (let i = at + digits - 1; i >= at; i--) {
    out[i] = ZERO + (v % 10);
    v = Math.floor(v / 10);
  }
  return at + digits;
}

/**
 * The registry's TabSeparated lines for these first copies (id, partition, offset, accepted time
 * as decimal seconds, which the engine reads into DateTime64(3) exactly), written byte by byte into
 * one buffer, and each id's hash for the filter. A plain ASCII id without escapes in JSON has
 * nothing TabSeparated escapes either: its bytes are copied from the message as they are. Ids
 * that are not readable are left out.
 */
export function registryLines(firsts: readonly EventMessage[]): {
  data: Buffer;
  h1: Int32Array;
  h2: Int32Array;
} {
  let size = 0;
  for (const m of firsts) size += m.value.length + 64;
  const out = Buffer.allocUnsafe(size);
  const h1 = new Int32Array(firsts.length);
  const h2 = new Int32Array(firsts.length);
  let at = 0;
  let k = 0;
  for (const m of firsts) {
    const buf = m.value;
    const end = idEnd(buf);
    if (end >= 0 && ASCII) {
      for (let i = PREFIX.length; i < end; i++) out[at++] = buf[i] as number;
      hashBytes(buf, end);
    } else {
      const id = m.id;
      if (id === undefined) continue;
      at += out.write(tsvEscape(id), at, 'utf8');
      hashChars(id);
    }
    h1[k] = H1;
    h2[k++] = H2;
    out[at++] = TAB;
    at = writeDigits(out, at, m.partition);
    out[at++] = TAB;
    const offset = Number(m.offset);
    if (Number.isSafeInteger(offset)) at = writeDigits(out, at, offset);
    else at += out.write(String(m.offset), at, 'latin1');
    out[at++] = TAB;
    const ms = m.timestamp;
    if (Number.isSafeInteger(ms) && ms >= 0) {
      at = writeDigits(out, at, Math.floor(ms / 1000));
      out[at++] = DOT;
      const frac = ms % 1000;
      out[at++] = ZERO + Math.floor(frac / 100);
      out[at++] = ZERO + (Math.floor(frac / 10) % 10);
      out[at++] = ZERO + (frac % 10);
    } else at += out.write(String(ms / 1000), at, 'latin1');
    out[at++] = NEWLINE;
  }
  return { data: out.subarray(0, at), h1: h1.subarray(0, k), h2: h2.subarray(0, k) };
}

const REGISTRY_COLUMNS = ['event_id', 'bus_partition', 'bus_offset', 'accepted_at'];
// One line per id (the sink registers first copies): nothing for the engine to collapse on insert.
const REGISTRY_SETTINGS = { date_time_input_format: 'best_effort', optimize_on_insert: 0 };
/** Bytes of encoded ids per registry lookup: the URL stays within a server's limit (16 KB and up). */
const LOOKUP_URL_BYTES = 8_000;

export type Dedup = {
  /** The messages of a batch that are first copies of their event, in order (ids unreadable pass). */
  firstCopies(messages: readonly EventMessage[]): Promise<EventMessage[]>;
  /** Records these first copies in the registry (the sink, as it stores them). */
  register(firsts: readonly EventMessage[]): Promise<void>;
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
  const verdicts = new Verdicts();
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
    const out: [string, number][] = [];
    // Bound parameters travel in the request's URL on a server, whose limit is a few kilobytes
    // (a replayed batch may hold thousands of possible duplicates): one query per ~8 KB of ids.
    let chunk: string[] = [];
    let size = 0;
    for (let i = 0; i <= ids.length; i++) {
      const id = ids[i];
      // Each id as it goes in the URL: quoted, escaped, percent-encoded, a comma after it.
      const cost = id === undefined ? 0 : encodeURIComponent(id).length + 8;
      if (id !== undefined && (chunk.length === 0 || size + cost < LOOKUP_URL_BYTES)) {
        chunk.push(id);
        size += cost;
        continue;
      }
      if (chunk.length > 0) await lookupChunk(chunk, out);
      chunk = id === undefined ? [] : [id];
      size = cost;
    }
    return out;
  }

  async function lookupChunk(ids: string[], out: [string, number][]) {
    const rs = await store.client.query({
      query: `SELECT event_id, toString(argMin((bus_partition, bus_offset), (accepted_at, bus_partition, bus_offset))) AS first
FROM ${table} WHERE event_id IN {ids:Array(String)} GROUP BY event_id`,
      query_params: { ids },
      format: 'JSONCompactEachRow',
    });
    for (const [id, first] of await rs.json<[string, string]>()) {
      const [p, o] = first.replace(/[()]/g, '').split(',');
      out.push([id, position(Number(p), BigInt(o))]);
    }
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
          // answer, and the verdict for its position is kept (`verdicts`) so the others read it
          // without hashing. Ids the filter may hold are decided by the registry; the others by the
          // first sighting. Each message is hashed once; its verdict is kept unless the registry decides.
          const n = messages.length;
          const first = new Uint8Array(n); // 1: a first copy (or no id); 2: the registry decides
          let hashes: Int32Array | undefined;
          let pending: Map<string, { h1: number; h2: number; first: number }> | undefined;
          for (let i = 0; i < n; i++) {
            const m = messages[i] as EventMessage;
            const known = verdicts.get(m);
            if (known !== -1) {
              first[i] = known;
              continue;
            }
            if (!hashOf(m)) {
              first[i] = 1;
              continue;
            }
            const seen = recent.find(H1, H2);
            if (seen !== -1) first[i] = seen === positionOf(m) ? 1 : 0;
            else if (filter.probe(H1, H2, false)) {
              const id = m.id as string;
              hashes ??= new Int32Array(n * 2);
              hashes[2 * i] = H1;
              hashes[2 * i + 1] = H2;
              pending ??= new Map();
              if (!pending.has(id)) pending.set(id, { h1: H1, h2: H2, first: positionOf(m) });
              first[i] = 2;
              continue;
            } else {
              recent.put(H1, H2, positionOf(m));
              first[i] = 1;
            }
            verdicts.set(m, first[i] === 1);
          }
          if (pending && hashes) {
            for (const [id, at] of await lookup([...pending.keys()])) {
              const p = pending.get(id);
              if (p) p.first = at;
            }
            // Another stage may have decided an id meanwhile, from the same registry.
            for (const p of pending.values())
              if (recent.find(p.h1, p.h2) === -1) recent.put(p.h1, p.h2, p.first);
            for (let i = 0; i < n; i++) {
              if (first[i] !== 2) continue;
              const m = messages[i] as EventMessage;
              const isFirst =
                recent.find(hashes[2 * i] as number, hashes[2 * i + 1] as number) === positionOf(m);
              first[i] = isFirst ? 1 : 0;
              verdicts.set(m, isFirst);
            }
          }
          const out: EventMessage[] = [];
          for (let i = 0; i < n; i++) if (first[i] === 1) out.push(messages[i] as EventMessage);
          if (out.length < n) onDuplicates(n - out.length);
          return out;
        },
        async register(firsts) {
          if (!firsts.length) return;
          const { data, h1, h2 } = registryLines(firsts);
          await store.insertTsv(table, REGISTRY_COLUMNS, data, REGISTRY_SETTINGS);
          for (let i = 0; i < h1.length; i++) filter.probe(h1[i] as number, h2[i] as number, true);
        },
      };
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
