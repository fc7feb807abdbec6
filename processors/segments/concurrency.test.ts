import { describe, expect, it } from 'vitest';
import { polled, serialised, takeOvers } from './concurrency.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('segments coordinator timing', () => {
  it('serialised: one thing at a time, in order, a failure not blocking the next', async () => {
    const serial = serialised();
    const log: string[] = [];
    const job =
      (name: string, ms: number, fail = false) =>
      async () => {
        log.push(`start ${name}`);
        await sleep(ms);
        log.push(`end ${name}`);
        if (fail) throw new Error(name);
        return name;
      };
    const a = serial(job('a', 30, true));
    const b = serial(job('b', 1));
    await expect(a).rejects.toThrow('a');
    expect(await b).toBe('b');
    await serial.idle();
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b']);
  });

  it('takeOvers: batches wait (heartbeating) for a failing take-over retried until it succeeds', async () => {
    const t = takeOvers();
    let tries = 0;
    const errors: unknown[] = [];
    t.start(
      async () => {
        if (++tries < 3) throw new Error('store down');
      },
      (err) => errors.push(err),
    );
    let beats = 0;
    const started = Date.now();
    await t.done({ heartbeat: async () => void beats++, signal: new AbortController().signal });
    expect(tries).toBe(3);
    expect(errors).toHaveLength(2);
    expect(beats).toBeGreaterThanOrEqual(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    // Once taken up, batches no longer wait.
    await t.done({ heartbeat: async () => void beats++, signal: new AbortController().signal });
  });

  it('takeOvers: a newer assignment supersedes a failing take-over, which stops retrying', async () => {
    const t = takeOvers();
    let oldTries = 0;
    t.start(
      async () => {
        oldTries++;
        throw new Error('store down');
      },
      () => {},
    );
    let newTries = 0;
    t.start(
      async () => void newTries++,
      () => {},
    );
    await t.done({ heartbeat: async () => {}, signal: new AbortController().signal });
    await sleep(1200);
    expect(oldTries).toBe(1);
    expect(newTries).toBe(1);
  });

  it('polled: the last answer, asked again in the background at most every interval', async () => {
    let asks = 0;
    let fail = false;
    const value = polled(
      async () => {
        asks++;
        if (fail) throw new Error('unreachable');
        return asks;
      },
      0,
      300,
    );
    expect(value()).toBe(0); // the answer comes later
    await sleep(5);
    expect(value()).toBe(1);
    expect(value()).toBe(1);
    expect(asks).toBe(1);
    await sleep(350);
    fail = true;
    value();
    await sleep(5);
    expect(value()).toBe(1); // a failed ask keeps the last answer
    expect(asks).toBe(2);
    expect(polled(undefined, 'none', 0)()).toBe('none');
  });
});
