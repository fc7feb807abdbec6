// What the event feed holds for one partition: values by offset over a span of consecutive offsets,
// kept in an array (offsets in a partition only grow, and consumers read them in order), dropped
// from the oldest end once every consumer has read past them, or while what is held costs more
// than `maxCost` (each value's cost is given when it is set).

/** Offsets ahead of the span beyond which what is held is given up rather than padded to. */
const FAR = 1_000_000;

export class HeldWindow<T> {
  private slots: (T | undefined)[] = [];
  private costs: number[] = [];
  private head = 0;
  /** The offset of slots[head]. */
  private base = 0;
  private count = 0;
  private cost = 0;

  constructor(private readonly maxCost: number) {}

  /** Values held (for tests and metrics). */
  get size(): number {
    return this.count;
  }

  get(offset: number): T | undefined {
    const i = offset - this.base;
    return i >= 0 && i < this.slots.length - this.head ? this.slots[this.head + i] : undefined;
  }

  /**
   * Holds a value at an offset. `floor` is where the span may start when it is empty (the offset
   * every reader has read past), so values set a little out of order still fit. Offsets before
   * the span are not held.
   */
  set(offset: number, value: T, cost: number, floor = offset): void {
    let span = this.slots.length - this.head;
    // Empty, or far ahead (offsets another process wrote in between): start afresh from here.
    if (span === 0 || offset - this.base >= FAR) {
      this.clear();
      this.base = floor <= offset && offset - floor < FAR ? floor : offset;
      span = 0;
    }
    const i = offset - this.base;
    if (i < 0) return;
    while (span < i) {
      this.slots.push(undefined);
      this.costs.push(0);
      span++;
    }
    if (i === span) {
      this.slots.push(value);
      this.costs.push(cost);
    } else {
      this.drop(this.head + i);
      this.slots[this.head + i] = value;
      this.costs[this.head + i] = cost;
    }
    this.count++;
    this.cost += cost;
    this.trim(Number.NEGATIVE_INFINITY);
  }

  /** Drops a value (its slot stays, empty). */
  delete(offset: number) {
    const i = offset - this.base;
    if (i >= 0 && i < this.slots.length - this.head) this.drop(this.head + i);
  }

  /** Drops everything before `passed`, and the oldest while over the bound. */
  trim(passed: number) {
    while (this.head < this.slots.length && (this.base < passed || this.cost > this.maxCost)) {
      this.drop(this.head++);
      this.base++;
    }
    if (this.head === this.slots.length) {
      this.slots = [];
      this.costs = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.costs = this.costs.slice(this.head);
      this.head = 0;
    }
  }

  clear() {
    this.slots = [];
    this.costs = [];
    this.head = 0;
    this.count = 0;
    this.cost = 0;
  }

  private drop(at: number) {
    if (this.slots[at] === undefined) return;
    this.slots[at] = undefined;
    this.count--;
    this.cost -= this.costs[at];
    this.costs[at] = 0;
  }
}
