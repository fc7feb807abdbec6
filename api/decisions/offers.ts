import { randomBytes } from 'node:crypto';

// The offers this process holds: made, not yet confirmed by a delivery, not yet released. They
// count against caps, daily limits, the quiet period and budgets here until confirmed (then the
// impression counts instead) or released when their hold ends.
//
// Offers are made in time order and released in the same order, so they live in a ring of typed
// arrays (32 bytes an offer, nothing for the collector to trace), indexed by a sequence number
// that is also the decision id's suffix: a confirmation finds its offer without a lookup table.
// Each offer links to the same user's previous one (as a distance in sequence numbers), so a
// user's held offers are a short walk from `userHead` (the low 32 bits of the user's latest
// sequence number: 4 bytes per interned user).

const HELD = 1;
const LOW = 2 ** 32;
const CONFIRMED = 2;

export type HeldOffer = {
  seq: number;
  campaign: number;
  channel: number;
  thread: number;
  atMs: number;
  priceMicros: number;
};

/** A 32-bit FNV-1a hash of a thread id: held offers compare threads by it. */
export function threadHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export class OfferBook {
  /** Distinguishes this process's decision ids from every other process's. */
  readonly instance = randomBytes(5).toString('hex');
  private readonly prefix = `d_${this.instance}`;
  private cap: number;
  private head = 1;
  private tail = 1;
  private at: Float64Array;
  private price: Float64Array;
  /** Distance back to the same user's previous offer; 0: none (or too far back to be held). */
  private prev: Uint32Array;
  private user: Int32Array;
  private thread: Int32Array;
  private campaign: Uint16Array;
  private channel: Uint8Array;
  private status: Uint8Array;
  private userHead = new Uint32Array(1024);
  private count = 0;
  /** Offers held now (made and neither confirmed nor released). */
  held = 0;

  constructor(
    private readonly onRelease: (campaign: number, priceMicros: number, atMs: number) => void,
    capacity = 1024,
    /** The first sequence number (tests start near 2^32 to cross the wrap of userHead). */
    startSeq = 1,
  ) {
    this.head = startSeq;
    this.tail = startSeq;
    this.cap = capacity;
    this.at = new Float64Array(capacity);
    this.price = new Float64Array(capacity);
    this.prev = new Uint32Array(capacity);
    this.user = new Int32Array(capacity);
    this.thread = new Int32Array(capacity);
    this.campaign = new Uint16Array(capacity);
    this.channel = new Uint8Array(capacity);
    this.status = new Uint8Array(capacity);
  }

  idOf(seq: number) {
    return `${this.prefix}${seq.toString(36)}`;
  }

  /** The sequence number of one of this process's decision ids that is still in the ring, or -1. */
  seqOf(decisionId: string): number {
    if (!decisionId.startsWith(this.prefix)) return -1;
    const seq = Number.parseInt(decisionId.slice(this.prefix.length), 36);
    return Number.isSafeInteger(seq) && seq >= this.head && seq < this.tail ? seq : -1;
  }

  add(o: Omit<HeldOffer, 'seq'>, userIdx: number): number {
    if (this.tail - this.head === this.cap) this.grow();
    // Sequence numbers whose low 32 bits are 0 are skipped: 0 means "none" in userHead.
    if (this.tail % LOW === 0) this.tail++;
    const seq = this.tail++;
    const i = seq % this.cap;
    this.at[i] = o.atMs;
    this.price[i] = o.priceMicros;
    this.user[i] = userIdx;
    this.thread[i] = o.thread;
    this.campaign[i] = o.campaign;
    this.channel[i] = o.channel;
    this.status[i] = HELD;
    if (userIdx >= this.userHead.length) {
      const n = new Uint32Array(Math.max(userIdx + 1, this.userHead.length * 2));
      n.set(this.userHead);
      this.userHead = n;
    }
    const last = this.fullSeq(this.userHead[userIdx]);
    this.prev[i] = last > 0 && seq - last < LOW ? seq - last : 0;
    this.userHead[userIdx] = seq % LOW;
    this.held++;
    this.count++;
    return seq;
  }

  /**
   * Marks a held offer confirmed (its impression now counts instead). 'held' when it was held,
   * 'seen' when it was already confirmed, 'unknown' when it is not in the ring.
   */
  confirm(seq: number): 'held' | 'seen' | 'unknown' {
    if (seq < this.head || seq >= this.tail) return 'unknown';
    const i = seq % this.cap;
    if (this.status[i] === CONFIRMED) return 'seen';
    if (this.status[i] !== HELD) return 'unknown';
    this.status[i] = CONFIRMED;
    this.held--;
    this.onRelease(this.campaign[i], this.price[i], this.at[i]);
    return 'held';
  }

  /** Releases every offer made before `beforeMs` that is still held. */
  expire(beforeMs: number) {
    while (this.head < this.tail) {
      const i = this.head % this.cap;
      if (this.at[i] >= beforeMs) break;
      if (this.status[i] === HELD) {
        this.held--;
        this.onRelease(this.campaign[i], this.price[i], this.at[i]);
      }
      this.status[i] = 0;
      this.head++;
    }
  }

  /** Calls fn for each offer this user holds now, newest first. */
  forEachHeld(userIdx: number, fn: (o: HeldOffer) => void) {
    if (userIdx < 0 || userIdx >= this.userHead.length) return;
    let seq = this.fullSeq(this.userHead[userIdx]);
    const o: HeldOffer = { seq: 0, campaign: 0, channel: 0, thread: 0, atMs: 0, priceMicros: 0 };
    while (seq >= this.head && seq < this.tail) {
      const i = seq % this.cap;
      if (this.user[i] !== userIdx) break;
      if (this.status[i] === HELD) {
        o.seq = seq;
        o.campaign = this.campaign[i];
        o.channel = this.channel[i];
        o.thread = this.thread[i];
        o.atMs = this.at[i];
        o.priceMicros = this.price[i];
        fn(o);
      }
      seq = this.prev[i] === 0 ? 0 : seq - this.prev[i];
    }
  }

  /** The sequence number (the most recent one) whose low 32 bits are `low`; 0 for none. */
  private fullSeq(low: number) {
    if (low === 0) return 0;
    const seq = this.tail - 1 - ((((this.tail - 1) % LOW) - low + LOW) % LOW);
    return seq > 0 ? seq : 0;
  }

  /** Offers made since start. */
  get made() {
    return this.count;
  }

  /** Bytes held by the ring and the per-user heads. */
  get bytes() {
    return this.cap * 32 + this.userHead.byteLength;
  }

  private grow() {
    const cap = this.cap * 2;
    const move = <T extends Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array>(
      a: T,
      make: (n: number) => T,
    ) => {
      const n = make(cap);
      for (let s = this.head; s < this.tail; s++) n[s % cap] = a[s % this.cap];
      return n;
    };
    this.at = move(this.at, (n) => new Float64Array(n));
    this.price = move(this.price, (n) => new Float64Array(n));
    this.prev = move(this.prev, (n) => new Uint32Array(n));
    this.user = move(this.user, (n) => new Int32Array(n));
    this.thread = move(this.thread, (n) => new Int32Array(n));
    this.campaign = move(this.campaign, (n) => new Uint16Array(n));
    this.channel = move(this.channel, (n) => new Uint8Array(n));
    this.status = move(this.status, (n) => new Uint8Array(n));
    this.cap = cap;
  }
}
