// What the event feed holds for one partition: values by offset over a span of consecutive offsets,
// kept in an array (offsets in a partition only grow, and consumers read them in order), dropped
// from the oldest end once every consumer has read past them or beyond `max` offsets.

export class HeldWindow<T> {
  private slots: (T | undefined)[] = [];
  private head = 0;
  /** The offset of slots[head]. */
  private base = 0;
  private count = 0;

  constructor(private readonly max: number) {}

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
  set(offset: number, value: T, floor = offset) {
    let span = this.slots.length - this.head;
    if (span === 0 || offset - this.base >= span + this.max) {
      // Empty, or so far ahead that everything held would be dropped anyway: start afresh.
      this.slots = [];
      this.head = 0;
      this.count = 0;
      this.base = floor <= offset && offset - floor < this.max ? floor : offset;
      span = 0;
    }
    const i = offset - this.base;
    if (i < 0) return;
    while (span < i) {
      this.slots.push(undefined);
      span++;
    }
    if (i === span) this.slots.push(value);
    else {
      if (this.slots[this.head + i] !== undefined) this.count--;
      this.slots[this.head + i] = value;
    }
    this.count++;
    this.trim(Number.NEGATIVE_INFINITY);
  }

  /** Drops a value (its slot stays, empty). */
  delete(offset: number) {
    const i = offset - this.base;
    if (i < 0 || i >= this.slots.length - this.head || this.slots[this.head + i] === undefined) return;
    this.slots[this.head + i] = undefined;
    this.count--;
  }

  /** Drops everything before `passed`, and the oldest beyond the bound. */
  trim(passed: number) {
    const slots = this.slots;
    while (this.head < slots.length && (this.base < passed || slots.length - this.head > this.max)) {
      if (slots[this.head] !== undefined) this.count--;
      slots[this.head++] = undefined;
      this.base++;
    }
    if (this.head === slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > slots.length) {
      this.slots = slots.slice(this.head);
      this.head = 0;
    }
  }

  clear() {
    this.slots = [];
    this.head = 0;
    this.count = 0;
  }
}
