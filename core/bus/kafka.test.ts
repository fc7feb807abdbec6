import { logLevel } from 'kafkajs';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { fetchLimits, toInMessage } from './kafka-consumer.ts';
import { kafkaLevel, kafkaLogCreator } from './kafka-log.ts';
import { chunkMessages } from './kafka.ts';

// Pure parts of the Kafka adapter; its behaviour on a broker is tested in test/kafka/.

describe('chunkMessages', () => {
  const msg = (i: number, size: number) => ({ key: `k${i % 3}`, value: Buffer.alloc(size, 97) });

  it('keeps every message, in order, in runs under the byte bound', () => {
    const msgs = Array.from({ length: 100 }, (_, i) => msg(i, 1000));
    const chunks = chunkMessages(msgs, 10_000);
    expect(chunks.flatMap((c) => c.messages)).toEqual(msgs);
    expect(chunks.length).toBeGreaterThan(10);
    for (const c of chunks) expect(c.bytes).toBeLessThanOrEqual(10_000);
  });

  it('puts a message larger than the bound alone in its own run', () => {
    const chunks = chunkMessages([msg(0, 10), msg(1, 50_000), msg(2, 10)], 10_000);
    expect(chunks.map((c) => c.messages.length)).toEqual([1, 1, 1]);
  });

  it('makes one run of a small publish, and none of an empty one', () => {
    expect(chunkMessages([msg(0, 10), msg(1, 10)])).toHaveLength(1);
    expect(chunkMessages([])).toEqual([]);
  });
});

describe('fetchLimits', () => {
  it('sizes fetches from the batch bound, within sane limits', () => {
    const small = fetchLimits(10, undefined, 4);
    expect(small.maxBytesPerPartition).toBe(64 * 1024);
    const big = fetchLimits(1_000_000, undefined, 4);
    expect(big.maxBytesPerPartition).toBe(8 * 1024 * 1024);
    expect(big.maxBytes).toBeLessThanOrEqual(50 * 1024 * 1024);
    expect(big.maxBytes).toBeGreaterThanOrEqual(big.maxBytesPerPartition);
  });

  it('long-polls without a fill wait, and waits to fill a batch with one', () => {
    expect(fetchLimits(1000, undefined, 4)).toMatchObject({ minBytes: 1, maxWaitTimeInMs: 500 });
    expect(fetchLimits(1000, 0, 4)).toMatchObject({ minBytes: 1, maxWaitTimeInMs: 500 });
    const fill = fetchLimits(20_000, 200, 4);
    expect(fill.maxWaitTimeInMs).toBe(200);
    expect(fill.minBytes).toBe(1024 * 1024);
  });
});

describe('toInMessage', () => {
  it('turns a kafkajs message into the bus message', () => {
    const m = toInMessage('t', 3, {
      key: Buffer.from('u1'),
      value: Buffer.from('{"a":1}'),
      timestamp: '1700000000123',
      attributes: 0,
      offset: '9007199254740993',
      headers: { a: Buffer.from('x'), b: 'y', c: [Buffer.from('1'), Buffer.from('2')], d: undefined },
    });
    expect(m).toEqual({
      topic: 't',
      partition: 3,
      offset: 9007199254740993n,
      key: 'u1',
      value: Buffer.from('{"a":1}'),
      timestamp: 1700000000123,
      headers: { a: 'x', b: 'y', c: '1,2', d: '' },
    });
  });

  it('reads a missing key as empty and a tombstone as an empty value', () => {
    const m = toInMessage('t', 0, {
      key: null,
      value: null,
      timestamp: '1',
      attributes: 0,
      offset: '0',
      size: 0,
    });
    expect(m.key).toBe('');
    expect(m.value.length).toBe(0);
    expect(m.headers).toEqual({});
  });
});

describe('kafkaLevel', () => {
  it('asks kafkajs only for what pino will print', () => {
    expect(kafkaLevel('debug')).toBe(logLevel.DEBUG);
    expect(kafkaLevel('info')).toBe(logLevel.INFO);
    expect(kafkaLevel('warn')).toBe(logLevel.WARN);
    expect(kafkaLevel('error')).toBe(logLevel.ERROR);
    expect(kafkaLevel('silent')).toBe(logLevel.NOTHING);
  });
});

describe('kafkaLogCreator', () => {
  it('routes kafkajs entries into pino with their fields, retried failures as warnings', () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()));
        cb();
      },
    });
    const log = kafkaLogCreator(createLogger({ level: 'debug', destination }))(logLevel.DEBUG);
    const entry = (namespace: string, level: logLevel, message: string) =>
      log({
        namespace,
        level,
        label: 'x',
        log: { message, timestamp: 'now', logger: 'kafkajs', groupId: 'g1' },
      });
    entry('Consumer', logLevel.ERROR, 'Crash: boom');
    entry('Connection', logLevel.ERROR, 'Connection error: refused');
    entry('ConsumerGroup', logLevel.INFO, 'Pausing fetching from 1 topics');
    entry('Consumer', logLevel.INFO, 'Starting');
    expect(lines.map((l) => [l.level, l.msg, l.namespace, l.groupId, l.component])).toEqual([
      [50, 'Crash: boom', 'Consumer', 'g1', 'kafkajs'],
      [40, 'Connection error: refused', 'Connection', 'g1', 'kafkajs'],
      [20, 'Pausing fetching from 1 topics', 'ConsumerGroup', 'g1', 'kafkajs'],
      [30, 'Starting', 'Consumer', 'g1', 'kafkajs'],
    ]);
    expect(lines.every((l) => l.timestamp === undefined && l.logger === undefined)).toBe(true);
  });
});
