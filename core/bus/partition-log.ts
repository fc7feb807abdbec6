import { constants as FS } from 'node:fs';
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

// One partition of the embedded log: append-only segment files of CRC-checked records.
//
// Record: u32 bodyLength | u32 crc32(body) | body
// body:   u64 offset | f64 timestamp | u16 keyLength | key | u32 headersLength | headers JSON | value
//
// Appends are group-committed: every append waiting while a write is in flight shares the next
// write, which is synchronous (O_DSYNC): it returns once the data is durable, as write + fdatasync
// would, in one system call and one trip through the I/O thread pool instead of two. Readers only
// ever see records that are on disk, so a committed offset can never point past what survives a
// crash. On open, the active segment is scanned and a torn or corrupt tail is cut off.

const HEAD = 8;
const FIXED = 8 + 8 + 2 + 4;
const INDEX_EVERY = 256;
const INDEX_EVERY_N = BigInt(INDEX_EVERY);
/** Shared by every record without headers (records are read-only). */
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** Memory of a cached record beyond its bytes: the record, its Buffer view and its offset. */
const RECORD_OVERHEAD = 200;
/** What a cached record holds in memory, as the read cache counts it: its bytes and its objects. */
const cachedCost = (r: LogRecord) => FIXED + r.key.length + r.value.length + RECORD_OVERHEAD;
const READ_CHUNK = 1 << 20;
export const MAX_RECORD = 8 * 1024 * 1024;
/** The active segment: appended to, read back on open, and every write durable on return. */
const ACTIVE_FLAGS = FS.O_RDWR | FS.O_CREAT | FS.O_APPEND | FS.O_DSYNC;

/** Shaped as the bus's InMessage, so records reach consumers as they are, with no copy. */
export type LogRecord = {
  topic: string;
  partition: number;
  offset: bigint;
  timestamp: number;
  key: string;
  headers: Record<string, string>;
  value: Buffer;
};
/** Where a reader following a partition is: it needs records from `at` on. */
export type ReadCursor = { at: bigint };
export type AppendInput = {
  key: string;
  value: Buffer | string;
  headers?: Record<string, string>;
};

type Segment = {
  base: bigint;
  path: string;
  size: number;
  /** Sparse (offset, position) pairs; null until the segment is first read. */
  index: { offset: bigint; pos: number }[] | null;
  last: bigint; // last offset in the segment (base - 1 when empty)
  reader?: Promise<FileHandle>;
};

export type PartitionLogOptions = {
  dir: string;
  /** Named on every record read. */
  topic?: string;
  partition?: number;
  segmentBytes?: number;
  /**
   * Memory for recent records that following readers have yet to read, their objects counted
   * (default 16 MiB); beyond it, lagging readers read from disk.
   */
  cacheBytes?: number;
  onTruncate?: (info: { path: string; at: number; size: number }) => void;
};

const name = (base: bigint) => `${base.toString().padStart(20, '0')}.log`;

export class PartitionLog {
  private segments: Segment[] = [];
  private fh!: FileHandle;
  private pending: {
    buf: Buffer;
    /** The records as readers will see them once durable (values point into buf). */
    records: { rec: LogRecord; bytes: number }[];
    resolve: () => void;
    reject: (e: unknown) => void;
  }[] = [];
  private flushing = false;
  private waiters = new Set<() => void>();
  // The most recent records as bytes, shared by every reader: consumers that keep up (the usual
  // case) never touch the disk. What a value means is for the layers above. A record stays only
  // while a reader following this partition has yet to pass it, and within cacheBytes: a topic no
  // one in the process reads (the offers topic) keeps nothing, and one whose readers keep up keeps
  // only their lag.
  private tail: LogRecord[] = [];
  private readonly cursors = new Set<ReadCursor>();
  /** The first offset a following reader still needs; past the end when no reader follows. */
  private neededFrom = 2n ** 63n;
  private tailHead = 0;
  private tailBytes = 0;
  private nextOffset = 0n;
  private closed = false;
  readonly segmentBytes: number;

  private constructor(private readonly opts: PartitionLogOptions) {
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
  }

  static async open(opts: PartitionLogOptions): Promise<PartitionLog> {
    const log = new PartitionLog(opts);
    await log.recover();
    return log;
  }

  /** First offset still on disk. */
  get startOffset(): bigint {
    return this.segments[0].base;
  }

  /** One past the last durable offset. */
  get endOffset(): bigint {
    return this.segments[this.segments.length - 1].last + 1n;
  }

  private async recover() {
    await mkdir(this.opts.dir, { recursive: true });
    const files = (await readdir(this.opts.dir)).filter((f) => /^\d{20}\.log$/.test(f)).sort();
    if (files.length === 0) files.push(name(0n));
    for (const f of files) {
      const path = join(this.opts.dir, f);
      const size = await stat(path).then(
        (s) => s.size,
        () => 0,
      );
      this.segments.push({
        base: BigInt(f.slice(0, 20)),
        path,
        size,
        index: null,
        last: BigInt(f.slice(0, 20)) - 1n,
      });
    }
    const active = this.segments[this.segments.length - 1];
    this.fh = await open(active.path, ACTIVE_FLAGS);
    const valid = await this.scan(active);
    if (valid < active.size) {
      this.opts.onTruncate?.({ path: active.path, at: valid, size: active.size });
      await this.fh.truncate(valid);
      await this.fh.datasync();
      active.size = valid;
    }
    // Sealed segments were complete when rolled; only their last offset is needed now.
    for (const s of this.segments.slice(0, -1)) s.last = this.nextSealedLast(s);
    this.nextOffset = active.last + 1n;
  }

  private nextSealedLast(s: Segment): bigint {
    const i = this.segments.indexOf(s);
    return this.segments[i + 1].base - 1n;
  }

  /** Reads a whole segment, building its index; returns the length of its valid prefix. */
  private async scan(seg: Segment): Promise<number> {
    const fh = await this.reader(seg);
    const index: NonNullable<Segment['index']> = [];
    let pos = 0;
    let expected = seg.base;
    let buf = Buffer.alloc(0);
    let bufStart = 0;
    // Makes buf cover [pos, pos + need); false when the file ends first.
    const ensure = async (need: number) => {
      if (pos - bufStart + need <= buf.length) return true;
      const len = Math.min(Math.max(READ_CHUNK, need), seg.size - pos);
      if (len < need) return false;
      buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      bufStart = pos;
      return bytesRead >= need;
    };
    while (pos < seg.size) {
      if (!(await ensure(HEAD))) break;
      const len = buf.readUInt32LE(pos - bufStart);
      if (len < FIXED || len > MAX_RECORD || !(await ensure(HEAD + len))) break;
      const at = pos - bufStart;
      const body = buf.subarray(at + HEAD, at + HEAD + len);
      if (crc32(body) !== buf.readUInt32LE(at + 4) || body.readBigUInt64LE(0) !== expected) break;
      if ((expected - seg.base) % INDEX_EVERY_N === 0n) index.push({ offset: expected, pos });
      expected++;
      pos += HEAD + len;
    }
    seg.index = index;
    seg.last = expected - 1n;
    return pos;
  }

  private async reader(seg: Segment): Promise<FileHandle> {
    seg.reader ??= open(seg.path, 'r');
    return seg.reader;
  }

  private decode(body: Buffer): LogRecord {
    return decode(this.opts.topic ?? '', this.opts.partition ?? 0, body);
  }

  append(records: AppendInput[], timestamp = Date.now()): Promise<{ first: bigint; last: bigint }> {
    if (this.closed) return Promise.reject(new Error('log is closed'));
    if (records.length === 0) return Promise.resolve({ first: this.nextOffset, last: this.nextOffset - 1n });
    const first = this.nextOffset;
    // One buffer for the whole append, values written straight into it.
    const sizes = records.map(measure);
    const buf = Buffer.allocUnsafe(sizes.reduce((a, m) => a + HEAD + m.body, 0));
    const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    let pos = 0;
    const topic = this.opts.topic ?? '';
    const partition = this.opts.partition ?? 0;
    // Offsets are written as two 32-bit halves of a number (exact below 2^53), the bigint made once per record.
    const base = Number(first);
    const recs = records.map((r, i) => {
      const m = sizes[i];
      pos = encodeAt(buf, view, pos, base + i, timestamp, r, m);
      const rec: LogRecord = {
        topic,
        partition,
        offset: first + BigInt(i),
        timestamp,
        key: r.key,
        headers: r.headers ?? NO_HEADERS,
        value: buf.subarray(pos - m.value, pos),
      };
      return { rec, bytes: m.body };
    });
    this.nextOffset = first + BigInt(records.length);
    return new Promise((resolve, reject) => {
      this.pending.push({
        buf,
        records: recs,
        resolve: () => resolve({ first, last: first + BigInt(records.length) - 1n }),
        reject,
      });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush() {
    this.flushing = true;
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      try {
        let seg = this.segments[this.segments.length - 1];
        if (seg.size > 0 && seg.size >= this.segmentBytes) seg = await this.roll();
        const bufs = group.map((g) => g.buf);
        await this.fh.writev(bufs, seg.size); // durable on return (O_DSYNC)
        // Index the new records before making them visible.
        let pos = seg.size;
        for (const g of group) {
          for (const { rec, bytes } of g.records) {
            if (seg.index && (rec.offset - seg.base) % INDEX_EVERY_N === 0n)
              seg.index.push({ offset: rec.offset, pos });
            seg.last = rec.offset;
            this.cache(rec);
            pos += HEAD + bytes;
          }
        }
        seg.size = pos;
        for (const g of group) g.resolve();
      } catch (err) {
        // The write may be partly on disk; the next open cuts it. Offsets handed out are lost, so
        // nothing more may be appended in this process.
        this.closed = true;
        for (const g of [...group, ...this.pending]) g.reject(err);
        this.pending = [];
      }
      // Appenders hear that their records are durable before waiting readers are woken to them,
      // so what an appender does on hearing it (noting where its records went) comes first.
      if (this.waiters.size > 0) {
        const woken = [...this.waiters];
        this.waiters.clear();
        setImmediate(() => {
          for (const w of woken) w();
        });
      }
    }
    this.flushing = false;
  }

  private async roll(): Promise<Segment> {
    await this.fh.close();
    const base = this.nextDurable();
    const seg: Segment = { base, path: join(this.opts.dir, name(base)), size: 0, index: [], last: base - 1n };
    this.fh = await open(seg.path, ACTIVE_FLAGS);
    this.segments.push(seg);
    return seg;
  }

  private nextDurable() {
    return this.segments[this.segments.length - 1].last + 1n;
  }

  /** Resolves when new records become durable, or after `ms`. */
  waitForData(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Reads durable records from `from` on (clamped to the start of the log), up to the limits. */
  private cache(rec: LogRecord) {
    if (rec.offset < this.neededFrom) return; // every following reader is past it already
    this.tail.push(rec);
    this.tailBytes += cachedCost(rec);
    this.evict();
  }

  /** Drops cached records no following reader needs, then the oldest beyond cacheBytes. */
  private evict() {
    const max = this.opts.cacheBytes ?? 16 * 1024 * 1024;
    while (
      this.tailHead < this.tail.length &&
      (this.tail[this.tailHead].offset < this.neededFrom || this.tailBytes > max)
    ) {
      this.tailBytes -= cachedCost(this.tail[this.tailHead++]);
    }
    if (this.tailHead === this.tail.length) {
      this.tail = [];
      this.tailHead = 0;
    } else if (this.tailHead > 4096 && this.tailHead * 2 > this.tail.length) {
      this.tail = this.tail.slice(this.tailHead);
      this.tailHead = 0;
    }
  }

  /**
   * A reader that follows this partition from `from` on: the read cache keeps what it has yet to
   * read. It moves the cursor past what it is done with (`advance`) and lets go when it stops.
   */
  follow(from: bigint): ReadCursor {
    const cursor = { at: from };
    this.cursors.add(cursor);
    if (from < this.neededFrom) this.neededFrom = from;
    return cursor;
  }

  /** The reader needs nothing before `to` any more. */
  advance(cursor: ReadCursor, to: bigint) {
    const was = cursor.at;
    cursor.at = to;
    if (was === this.neededFrom) this.recomputeNeeded();
  }

  unfollow(cursor: ReadCursor) {
    if (this.cursors.delete(cursor)) this.recomputeNeeded();
  }

  private recomputeNeeded() {
    let min = 2n ** 63n;
    for (const c of this.cursors) if (c.at < min) min = c.at;
    if (min === this.neededFrom) return;
    this.neededFrom = min;
    this.evict();
  }

  async read(from: bigint, maxRecords: number, maxBytes = 8 * 1024 * 1024): Promise<LogRecord[]> {
    if (from < this.startOffset) from = this.startOffset;
    if (from >= this.endOffset) return [];
    const first = this.tail[this.tailHead];
    if (first && from >= first.offset) {
      const out: LogRecord[] = [];
      let bytes = 0;
      for (
        let i = this.tailHead + Number(from - first.offset);
        i < this.tail.length && out.length < maxRecords && bytes < maxBytes;
        i++
      ) {
        out.push(this.tail[i]);
        bytes += this.tail[i].value.length;
      }
      return out;
    }
    let i = this.segments.length - 1;
    while (i > 0 && this.segments[i].base > from) i--;
    const seg = this.segments[i];
    if (seg.index === null) await this.scan(seg);
    let pos = 0;
    for (const e of seg.index ?? []) {
      if (e.offset > from) break;
      pos = e.pos;
    }
    const fh = await this.reader(seg);
    const out: LogRecord[] = [];
    let bytes = 0;
    const end = seg.size; // durable end, fixed for this read
    while (out.length < maxRecords && bytes < maxBytes && pos < end) {
      let len = Math.min(READ_CHUNK, end - pos);
      let buf = Buffer.allocUnsafe(len);
      await fh.read(buf, 0, len, pos);
      if (HEAD + buf.readUInt32LE(0) > len) {
        // One record larger than the chunk.
        len = HEAD + buf.readUInt32LE(0);
        buf = Buffer.allocUnsafe(len);
        await fh.read(buf, 0, len, pos);
      }
      let p = 0;
      while (p + HEAD <= len && out.length < maxRecords && bytes < maxBytes) {
        const rl = buf.readUInt32LE(p);
        if (p + HEAD + rl > len) break;
        const rec = this.decode(buf.subarray(p + HEAD, p + HEAD + rl));
        p += HEAD + rl;
        if (rec.offset < from) continue;
        out.push(rec);
        bytes += rl;
      }
      pos += p;
    }
    return out;
  }

  /**
   * The first offset whose record was appended at or after `timestamp` (the end offset when none
   * was). Scanning starts in the last segment whose first record is older, so a read from a recent
   * time touches only the newest segments.
   */
  async offsetForTimestamp(timestamp: number): Promise<bigint> {
    let from = this.startOffset;
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const [first] = await this.read(this.segments[i].base, 1);
      if (first && first.timestamp < timestamp) {
        from = first.offset;
        break;
      }
    }
    for (;;) {
      const recs = await this.read(from, 1000);
      if (recs.length === 0) return this.endOffset;
      const hit = recs.find((r) => r.timestamp >= timestamp);
      if (hit) return hit.offset;
      from = recs[recs.length - 1].offset + 1n;
    }
  }

  /** Deletes whole sealed segments older than `maxAgeMs` or beyond `maxBytes` in total. */
  async applyRetention(maxAgeMs: number, maxBytes: number, now = Date.now()): Promise<number> {
    let removed = 0;
    let total = this.segments.reduce((a, s) => a + s.size, 0);
    while (this.segments.length > 1) {
      const s = this.segments[0];
      const mtime = await stat(s.path).then(
        (x) => x.mtimeMs,
        () => 0,
      );
      if (now - mtime <= maxAgeMs && total <= maxBytes) break;
      await s.reader?.then((f) => f.close()).catch(() => {});
      await rm(s.path, { force: true });
      this.segments.shift();
      total -= s.size;
      removed++;
    }
    return removed;
  }

  async close() {
    while (this.flushing) await new Promise((r) => setTimeout(r, 1));
    this.closed = true;
    await this.fh.close();
    for (const s of this.segments) await s.reader?.then((f) => f.close()).catch(() => {});
  }
}

type Measured = { key: number; ascii: boolean; headers: string | null; value: number; body: number };

/** UTF-8 length of a key, and whether it is ASCII (one byte a character, written without a call into C++). */
function measureKey(key: string): { bytes: number; ascii: boolean } {
  for (let i = 0; i < key.length; i++)
    if (key.charCodeAt(i) > 0x7f) return { bytes: Buffer.byteLength(key), ascii: false };
  return { bytes: key.length, ascii: true };
}

function measure(r: AppendInput): Measured {
  const { bytes: key, ascii } = measureKey(r.key);
  const headers = r.headers && Object.keys(r.headers).length > 0 ? JSON.stringify(r.headers) : null;
  const value = typeof r.value === 'string' ? Buffer.byteLength(r.value) : r.value.length;
  return {
    key,
    ascii,
    headers,
    value,
    body: FIXED + key + (headers ? Buffer.byteLength(headers) : 0) + value,
  };
}

function encodeAt(
  out: Buffer,
  view: DataView,
  start: number,
  offset: number,
  timestamp: number,
  r: AppendInput,
  m: Measured,
): number {
  let p = start + HEAD;
  view.setUint32(p, offset % 2 ** 32, true);
  view.setUint32(p + 4, Math.floor(offset / 2 ** 32), true);
  view.setFloat64(p + 8, timestamp, true);
  view.setUint16(p + 16, m.key, true);
  p += 18;
  if (m.ascii) for (let i = 0; i < m.key; i++) out[p++] = r.key.charCodeAt(i);
  else p += out.write(r.key, p, 'utf8');
  const hl = m.headers ? out.write(m.headers, p + 4, 'utf8') : 0;
  view.setUint32(p, hl, true);
  p += 4 + hl;
  if (typeof r.value === 'string') p += out.write(r.value, p, m.value, 'utf8');
  else {
    out.set(r.value, p);
    p += m.value;
  }
  view.setUint32(start, m.body, true);
  view.setUint32(start + 4, crc32(out.subarray(start + HEAD, p)), true);
  return p;
}

/** Decodes a record body read from disk; the value is copied out of the large read buffer. */
function decode(topic: string, partition: number, body: Buffer): LogRecord {
  const offset = body.readBigUInt64LE(0);
  const timestamp = body.readDoubleLE(8);
  const kl = body.readUInt16LE(16);
  const key = body.toString('utf8', 18, 18 + kl);
  const hl = body.readUInt32LE(18 + kl);
  const hs = 22 + kl;
  const headers = hl > 0 ? JSON.parse(body.toString('utf8', hs, hs + hl)) : NO_HEADERS;
  const value = Buffer.from(body.subarray(hs + hl));
  return { topic, partition, offset, timestamp, key, headers, value };
}
