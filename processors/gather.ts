/**
 * Batches of several partitions done as one round of work: a batch handed over while a round
 * runs joins the next, and the first of a round waits `gatherMs` for others. Every batch of a
 * round settles as the round does. For work whose cost is mostly per store call (each insert
 * makes a part, whatever its size, and the engine spends milliseconds on any call), so that the
 * partitions consumed side by side share each call instead of making one each.
 */
export function gathering<T>(
  run: (items: T[]) => Promise<void>,
  gatherMs = 5,
): (items: T[]) => Promise<void> {
  type Waiting = { items: T[]; resolve: () => void; reject: (err: unknown) => void };
  let queue: Waiting[] = [];
  let running = false;

  async function drain() {
    running = true;
    try {
      await new Promise((r) => setTimeout(r, gatherMs));
      while (queue.length > 0) {
        const round = queue;
        queue = [];
        try {
          await run(round.length === 1 ? round[0].items : round.flatMap((w) => w.items));
          for (const w of round) w.resolve();
        } catch (err) {
          for (const w of round) w.reject(err);
        }
      }
    } finally {
      running = false;
    }
  }

  return (items) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ items, resolve, reject });
      if (!running) void drain();
    });
}
