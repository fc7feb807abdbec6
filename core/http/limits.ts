// Rate limits kept in this process's memory: a count per key (a client address, an API key's
// hash) over a fixed window that starts at the key's first hit. Checking and counting are a Map
// lookup, with no promise and no timer, so the busiest routes (decisions, ingest) can afford one on
// every request.

export class WindowLimit {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();

  /**
   * @param max hits allowed per window; one more is over the limit
   * @param maxKeys keys remembered at once: past it, the oldest windows are forgotten first
   */
  constructor(
    readonly max: number,
    readonly windowMs: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Counts one hit for the key. Returns 0 when within the limit, else seconds until the window ends. */
  hit(key: string, nowMs = Date.now()): number {
    let w = this.windows.get(key);
    if (w === undefined || w.endsAt <= nowMs) {
      if (w !== undefined)
        this.windows.delete(key); // re-inserted last: the map stays in window order
      else if (this.windows.size >= this.maxKeys) this.sweep(nowMs);
      w = { count: 0, endsAt: nowMs + this.windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return w.count > this.max ? secondsLeft(w.endsAt, nowMs) : 0;
  }

  /** Whether one more hit for the key now would be within the limit, without counting it. */
  room(key: string, nowMs = Date.now()): boolean {
    const w = this.windows.get(key);
    return w === undefined || w.endsAt <= nowMs || w.count < this.max;
  }

  /** Whether the key is over the limit already, without counting: 0 when not, else seconds left. */
  over(key: string, nowMs = Date.now()): number {
    if (this.windows.size === 0) return 0;
    const w = this.windows.get(key);
    return w !== undefined && w.endsAt > nowMs && w.count > this.max ? secondsLeft(w.endsAt, nowMs) : 0;
  }

  get keys() {
    return this.windows.size;
  }

  /** Drops ended windows (the oldest come first); when none has ended, the oldest quarter. */
  private sweep(nowMs: number) {
    const before = this.windows.size;
    for (const [key, w] of this.windows) {
      if (w.endsAt > nowMs) break;
      this.windows.delete(key);
    }
    if (this.windows.size < before) return;
    let drop = Math.max(1, this.maxKeys >> 2);
    for (const key of this.windows.keys()) {
      if (drop-- <= 0) break;
      this.windows.delete(key);
    }
  }
}

const secondsLeft = (endsAt: number, nowMs: number) => Math.max(1, Math.ceil((endsAt - nowMs) / 1000));
