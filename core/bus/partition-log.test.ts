import { mkdtemp, open, readdir, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PartitionLog } from './partition-log.ts';

const rec = (i: number) => ({
  key: `k${i % 7}`,
  value: i % 3 ? Buffer.from(`value-${i}`) : `value-${i}`, // Buffers and strings alike
  headers: i % 2 ? { h: String(i) } : undefined,
});
const dir = () => mkdtemp(join(tmpdir(), 'parley-plog-'));

describe('PartitionLog', () => {
  it('assigns contiguous offsets and reads back what was appended', async () => {
    const log = await PartitionLog.open({ dir: await dir() });
    const a = await log.append([rec(0), rec(1), rec(2)], 1001);
    const b = await log.append([rec(3)], 1003);
    expect([a.first, a.last, b.first, b.last]).toEqual([0n, 2n, 3n, 3n]);
    const got = await log.read(1n, 10);
    expect(got.map((r) => [r.offset, r.key, r.value.toString(), r.timestamp, r.headers])).toEqual([
      [1n, 'k1', 'value-1', 1001, { h: '1' }],
      [2n, 'k2', 'value-2', 1001, {}],
      [3n, 'k3', 'value-3', 1003, { h: '3' }],
    ]);
    expect(await log.read(4n, 10)).toEqual([]);
    await log.close();
  });

  it('finds the first offset appended at or after a time, across segments and after a reopen', async () => {
    const path = await dir();
    // Small segments and a small cache: the search reads sealed segments from disk.
    const opts = { dir: path, segmentBytes: 256, cacheBytes: 64 };
    let log = await PartitionLog.open(opts);
    // Offsets 0..39, ten per time: 1000, 2000, 3000, 4000.
    for (let t = 1; t <= 4; t++)
      for (let i = 0; i < 10; i++) await log.append([rec((t - 1) * 10 + i)], t * 1000);
    expect((await readdir(path)).filter((f) => f.endsWith('.log')).length).toBeGreaterThan(4);
    const check = async () => {
      expect(await log.offsetForTimestamp(0)).toBe(0n);
      expect(await log.offsetForTimestamp(1000)).toBe(0n);
      expect(await log.offsetForTimestamp(1001)).toBe(10n);
      expect(await log.offsetForTimestamp(2500)).toBe(20n);
      expect(await log.offsetForTimestamp(4000)).toBe(30n);
      expect(await log.offsetForTimestamp(4001)).toBe(40n); // none: the end
    };
    await check();
    await log.close();
    log = await PartitionLog.open(opts);
    await check();
    await log.close();
  });

  it('group-commits concurrent appends in order', async () => {
    const log = await PartitionLog.open({ dir: await dir() });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append([rec(i)])));
    expect(results.map((r) => r.first)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i)));
    expect((await log.read(0n, 100)).map((r) => r.value.toString())).toEqual(
      Array.from({ length: 50 }, (_, i) => `value-${i}`),
    );
    await log.close();
  });

  it('recovers after reopen and cuts a torn tail', async () => {
    const d = await dir();
    const log = await PartitionLog.open({ dir: d });
    await log.append(Array.from({ length: 10 }, (_, i) => rec(i)));
    await log.close();
    const file = join(d, (await readdir(d))[0]);
    const full = (await stat(file)).size;
    // A crash in the middle of a write leaves part of a record behind.
    const fh = await open(file, 'r+');
    await fh.truncate(full - 5);
    await fh.close();
    let cut: unknown;
    const again = await PartitionLog.open({ dir: d, onTruncate: (i) => (cut = i) });
    expect(cut).toBeTruthy();
    expect(again.endOffset).toBe(9n);
    expect((await again.read(0n, 100)).length).toBe(9);
    const next = await again.append([rec(99)]);
    expect(next.first).toBe(9n);
    expect((await again.read(9n, 1))[0].value.toString()).toBe('value-99');
    await again.close();
  });

  it('cuts a corrupt record (bad checksum) and everything after it', async () => {
    const d = await dir();
    const log = await PartitionLog.open({ dir: d });
    await log.append(Array.from({ length: 5 }, (_, i) => rec(i)));
    await log.close();
    const file = join(d, (await readdir(d))[0]);
    const fh = await open(file, 'r+');
    const size = (await stat(file)).size;
    await fh.write(Buffer.from([0xff]), 0, 1, Math.floor(size * 0.7)); // flip a byte inside record 3
    await fh.close();
    const again = await PartitionLog.open({ dir: d });
    expect(again.endOffset).toBeLessThan(5n);
    expect(again.endOffset).toBeGreaterThan(0n);
    await again.close();
  });

  it('rolls segments, reads across them, and applies retention to whole old segments', async () => {
    const d = await dir();
    const log = await PartitionLog.open({ dir: d, segmentBytes: 200, cacheBytes: 100 }); // most reads from disk
    for (let i = 0; i < 40; i++) await log.append([rec(i)]);
    const files = (await readdir(d)).sort();
    expect(files.length).toBeGreaterThan(3);
    const all: string[] = [];
    for (let off = 0n; off < log.endOffset; ) {
      const batch = await log.read(off, 7);
      all.push(...batch.map((r) => r.value.toString()));
      off = batch.at(-1)!.offset + 1n;
    }
    expect(all).toEqual(Array.from({ length: 40 }, (_, i) => `value-${i}`));
    await log.close();

    const reopened = await PartitionLog.open({ dir: d, segmentBytes: 200 });
    expect(reopened.endOffset).toBe(40n);
    expect((await reopened.read(17n, 1))[0].value.toString()).toBe('value-17');
    const old = new Date(Date.now() - 3600_000);
    for (const f of files.slice(0, 2)) await utimes(join(d, f), old, old);
    expect(await reopened.applyRetention(60_000, 1e9)).toBe(2);
    expect(reopened.startOffset).toBeGreaterThan(0n);
    // Reading before the start clamps to the first offset still kept.
    expect((await reopened.read(0n, 1))[0].offset).toBe(reopened.startOffset);
    await reopened.close();
  });
});

describe('PartitionLog records', () => {
  it('keep any key, Buffer views and offsets beyond 32 bits as appended, in memory and after a reopen', async () => {
    const d = await dir();
    // A log whose first offset is just below 2^32, as after billions of records.
    await (await open(join(d, '00000000004294967290.log'), 'w')).close();
    const log = await PartitionLog.open({ dir: d });
    const cursor = log.follow(log.startOffset); // keeps what is appended in the read cache
    const around = Buffer.from('xxxxhello, worldyyyy');
    const keys = ['u_1', 'émoji 💈', 'ß', '', 'k'.repeat(300)];
    const recs = keys.map((key, i) => ({ key, value: i % 2 ? around.subarray(4, 16) : `v${i} ünïcode` }));
    const a = await log.append(recs, 1005);
    const b = await log.append(recs, 1006);
    expect([a.first, b.last]).toEqual([4294967290n, 4294967299n]);
    const expected = [...recs, ...recs].map((r, i) => [
      4294967290n + BigInt(i),
      r.key,
      r.value.toString(),
      i < 5 ? 1005 : 1006,
    ]);
    const plain = (rs: { offset: bigint; key: string; value: Buffer; timestamp: number }[]) =>
      rs.map((r) => [r.offset, r.key, r.value.toString(), r.timestamp]);
    expect(plain(await log.read(0n, 100))).toEqual(expected);
    log.unfollow(cursor);
    await log.close();
    // Reopening checks every record's checksum and offset.
    const again = await PartitionLog.open({ dir: d });
    expect(again.endOffset).toBe(4294967300n);
    expect(plain(await again.read(0n, 100))).toEqual(expected);
    await again.close();
  });
});

describe('PartitionLog read cache', () => {
  it('serves the same records from memory and from disk', async () => {
    const d = await dir();
    const log = await PartitionLog.open({ dir: d, cacheBytes: 10_000 });
    for (let i = 0; i < 500; i++) await log.append([rec(i)]);
    const fromMemory = await log.read(450n, 100);
    const wholeFromMixed = await log.read(0n, 1000);
    await log.close();
    const cold = await PartitionLog.open({ dir: d });
    const fromDisk = await cold.read(450n, 100);
    const plain = (
      rs: { offset: bigint; key: string; value: Buffer; timestamp: number; headers: object }[],
    ) => rs.map((r) => [r.offset, r.key, r.value.toString(), r.timestamp, r.headers]);
    expect(plain(fromMemory)).toEqual(plain(fromDisk));
    expect(fromMemory).toHaveLength(50);
    expect(wholeFromMixed[0].offset).toBe(0n); // older than the cache: read from disk
    await cold.close();
  });
});

describe('PartitionLog read cache bound', () => {
  it('counts the bytes and the objects of each cached record, and stays at its bound', async () => {
    const d = await dir();
    // Each record: 100 bytes of value, a 2-character key; about 324 bytes cached with its
    // objects, so 3240 bytes hold 10 records (not 31 by their bytes alone).
    const log = await PartitionLog.open({ dir: d, cacheBytes: 3240 });
    const value = 'x'.repeat(100);
    // A record served from the cache is the same object at every read; one read from disk is new.
    const cached = async (from: bigint) => {
      let n = 0;
      for (let o = from; o < log.endOffset; o++) {
        const [first] = await log.read(o, 1);
        const [again] = await log.read(o, 1);
        if (first === again) n++;
      }
      return n;
    };
    log.follow(0n); // a reader that has read nothing yet: the cache keeps what it can
    for (let i = 0; i < 50; i++) await log.append([{ key: 'k1', value }]);
    expect(await cached(0n)).toBe(10);
    // Evictions subtract what was added: after many more appends the cache still holds as many.
    for (let i = 0; i < 950; i++) await log.append([{ key: 'k1', value }]);
    expect(await cached(900n)).toBe(10);
    await log.close();
  });
});

describe('PartitionLog read cache follows its readers', () => {
  const sameTwice = async (log: PartitionLog, o: bigint) => {
    const [a] = await log.read(o, 1);
    const [b] = await log.read(o, 1);
    return a === b;
  };

  it('keeps nothing when no reader follows the partition', async () => {
    const log = await PartitionLog.open({ dir: await dir() });
    for (let i = 0; i < 20; i++) await log.append([{ key: 'k', value: `v${i}` }]);
    expect(await sameTwice(log, 19n)).toBe(false); // read from disk each time
    expect((await log.read(0n, 100)).map((r) => r.value.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `v${i}`),
    );
    await log.close();
  });

  it('keeps what the slowest follower has yet to read, and lets go of what all have passed', async () => {
    const log = await PartitionLog.open({ dir: await dir() });
    const fast = log.follow(0n);
    const slow = log.follow(0n);
    for (let i = 0; i < 20; i++) await log.append([{ key: 'k', value: `v${i}` }]);
    expect(await sameTwice(log, 0n)).toBe(true);
    log.advance(fast, 20n);
    expect(await sameTwice(log, 5n)).toBe(true); // the slow reader still needs it
    log.advance(slow, 10n);
    expect(await sameTwice(log, 5n)).toBe(false); // both are past it
    expect(await sameTwice(log, 10n)).toBe(true);
    log.unfollow(slow);
    expect(await sameTwice(log, 15n)).toBe(false);
    // What the fast reader has not read yet is kept.
    await log.append([{ key: 'k', value: 'v20' }]);
    expect(await sameTwice(log, 20n)).toBe(true);
    expect((await log.read(5n, 100)).map((r) => r.value.toString())).toEqual(
      Array.from({ length: 16 }, (_, i) => `v${i + 5}`),
    );
    log.unfollow(fast);
    expect(await sameTwice(log, 20n)).toBe(false);
    await log.close();
  });
});
