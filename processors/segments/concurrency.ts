import type { BatchContext } from '../../core/bus/types.ts';

// The segments coordinator's timing: one thing at a time on the evaluator, a take-over that
// batches wait for, and a value kept fresh in the background.

/** Runs one thing at a time (the evaluator's loads, sweeps and refreshes), so changes are written in order. */
export function serialised() {
  let chain: Promise<unknown> = Promise.resolve();
  const run = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => {});
    return p;
  };
  return Object.assign(run, { idle: () => chain });
}

/**
 * The take-over of the latest assignment, retried every second until it succeeds or a newer one
 * supersedes it; batches wait for it, keeping the membership in the group alive meanwhile.
 */
export function takeOvers() {
  let pending: Promise<void> | undefined;
  let latest: object | undefined;
  return {
    start(run: () => Promise<void>, onError: (err: unknown) => void) {
      const self = {};
      const attempt = (): Promise<void> =>
        run().catch(async (err) => {
          onError(err);
          await new Promise((r) => setTimeout(r, 1000));
          if (latest === self) return attempt();
        });
      latest = self;
      pending = attempt();
    },
    async done(ctx: BatchContext) {
      while (pending) {
        const current = pending;
        const finished = await Promise.race([
          current.then(() => true),
          new Promise<false>((r) => setTimeout(r, 1000, false)),
        ]);
        if (finished) {
          if (pending === current) pending = undefined;
          return;
        }
        await ctx.heartbeat();
      }
    },
  };
}

/** The latest answer of `read`, asked again in the background (at most every everyMs) when used. */
export function polled<T>(read: (() => Promise<T>) | undefined, initial: T, everyMs: number): () => T {
  let value = initial;
  let at = 0;
  let asking = false;
  return () => {
    if (read && !asking && Date.now() - at >= everyMs) {
      asking = true;
      read()
        .then((v) => {
          value = v;
        })
        .catch(() => {}) // the last answer stands; the next use asks again
        .finally(() => {
          at = Date.now();
          asking = false;
        });
    }
    return value;
  };
}
