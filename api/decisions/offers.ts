import { randomBytes } from 'node:crypto';

// The offers this process holds: made, not yet confirmed by a delivery, not yet released. They
// count against caps, daily limits, the quiet period and budgets here until confirmed (then the
// impression counts instead) or released when their hold ends.
//
// Offers are made in time order and released in the same order, so they live in a queue of
// fixed-size chunks of typed arrays (32 bytes an offer, nothing for the collector to trace; a
// chunk is freed as soon as every offer in it is released, so memory follows the offers held),
// indexed by a sequence number that is also the decision id's suffix: a confirmation finds its
// offer without a lookup table. Each offer links to the same user's previous one (as a distance in
// sequence numbers), so a user's held offers are a short walk from `userHead` (the low 32 bits of
// the user's latest sequence number: 4 bytes per interned user).

const HELD = 1;
const CONFIRMED = 2;
const LOW = 2 ** 32;
/** Prices above this (4,295 currency units an impression) are kept beside the chunks. */
const PRICE_MAX = LOW - 1;

export type HeldOffer = {
  seq: number;
  /** A 32-bit hash of the decision id (impressions use it to recognise a repeat). */
  key: number;
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

class Chunk {
  readonly at: Float64Array;
  readonly price: Uint32Array;
  /** Distance back to the same user's previous offer; 0: none (or too far back to be held). */
  readonly prev: Uint32Array;
  readonly user: Int32Array;
  readonly thread: Int32Array;
  readonly key: Int32Array;
  readonly campaign: Uint16Array;
  readonly channel: Uint8Array;
  readonly status: Uint8Array;
  constructor(n: number) {
    this.at = new Float64Array(n);
    this.price = new Uint32Array(n);
    this.prev = new Uint32Array(n);
    this.user = new Int32Array(n);
    this.thread = new Int32Array(n);
    this.key = new Int32Array(n);
    this.campaign = new Uint16Array(n);
    this.channel = new Uint8Array(n);
    this.status = new Uint8Array(n);
  }
  static readonly BYTES = 8 + 4 + 4 + 4 + 4 + 4 + 2 + 1 + 1;
}

/**
 * A queue of offers (or impressions) in the order they were added, released oldest first, each
 * linked to the same user's previous one.
 */
export class OfferBook {
  /** Distinguishes this process's decision ids from every other process's. */
  readonly instance = randomBytes(5).toString('hex');
  private readonly prefix = `d_${this.instance}`;
  private head: number;
  private tail: number;
  /** chunks[k] holds sequence numbers [(firstChunk + k) × size, (firstChunk + k + 1) × size). */
  private chunks: Chunk[] = [];
  private firstChunk: number;
  private spare: Chunk | undefined;
  private readonly bigPrices = new Map<number, number>();
  private userHead = new Uint32Array(1024);
  private count = 0;
  /** Offers held now (made and neither confirmed nor released). */
  held = 0;

  constructor(
    private readonly onRelease: (campaign: number, priceMicros: number, atMs: number) => void,
    private readonly chunkSize = 65_536,
    /** The first sequence number (tests start near 2^32 to cross the wrap of userHead). */
    startSeq = 1,
  ) {
    this.head = startSeq;
    this.tail = startSeq;
    this.firstChunk = Math.floor(startSeq / chunkSize);
  }

  idOf(seq: number) {
    return `${this.prefix}${seq.toString(36)}`;
  }

  /** The sequence number of one of this process's decision ids that is still in the queue, or -1. */
  seqOf(decisionId: string): number {
    if (!decisionId.startsWith(this.prefix)) return -1;
    const seq = Number.parseInt(decisionId.slice(this.prefix.length), 36);
    return Number.isSafeInteger(seq) && seq >= this.head && seq < this.tail ? seq : -1;
  }

  private chunkOf(seq: number): Chunk {
    return this.chunks[Math.floor(seq / this.chunkSize) - this.firstChunk];
  }

  add(o: Omit<HeldOffer, 'seq'>, userIdx: number): number {
    // Sequence numbers whose low 32 bits are 0 are skipped: 0 means "none" in userHead.
    if (this.tail % LOW === 0) this.tail++;
    const seq = this.tail++;
    const k = Math.floor(seq / this.chunkSize) - this.firstChunk;
    while (k >= this.chunks.length) {
      this.chunks.push(this.spare ?? new Chunk(this.chunkSize));
      this.spare = undefined;
    }
    const c = this.chunks[k];
    const i = seq % this.chunkSize;
    c.at[i] = o.atMs;
    c.price[i] = Math.min(o.priceMicros, PRICE_MAX);
    if (o.priceMicros >= PRICE_MAX) this.bigPrices.set(seq, o.priceMicros);
    c.user[i] = userIdx;
    c.thread[i] = o.thread;
    c.key[i] = o.key;
    c.campaign[i] = o.campaign;
    c.channel[i] = o.channel;
    c.status[i] = HELD;
    if (userIdx >= this.userHead.length) {
      const n = new Uint32Array(Math.max(userIdx + 1, this.userHead.length * 2));
      n.set(this.userHead);
      this.userHead = n;
    }
    const last = this.fullSeq(this.userHead[userIdx]);
    c.prev[i] = last >= this.head && seq - last < LOW ? seq - last : 0;
    this.userHead[userIdx] = seq % LOW;
    this.held++;
    this.count++;
    return seq;
  }

  private priceOf(c: Chunk, i: number, seq: number) {
    return c.price[i] === PRICE_MAX ? (this.bigPrices.get(seq) ?? PRICE_MAX) : c.price[i];
  }

  /**
   * Marks a held offer confirmed (its impression now counts instead). 'held' when it was held,
   * 'seen' when it was already confirmed, 'unknown' when it is not in the queue.
   */
  confirm(seq: number): 'held' | 'seen' | 'unknown' {
    if (seq < this.head || seq >= this.tail) return 'unknown';
    const c = this.chunkOf(seq);
    const i = seq % this.chunkSize;
    if (c.status[i] === CONFIRMED) return 'seen';
    if (c.status[i] !== HELD) return 'unknown';
    c.status[i] = CONFIRMED;
    this.held--;
    this.onRelease(c.campaign[i], this.priceOf(c, i, seq), c.at[i]);
    return 'held';
  }

  /** Releases every offer made before `beforeMs` that is still held. */
  expire(beforeMs: number) {
    while (this.head < this.tail) {
      const c = this.chunkOf(this.head);
      const i = this.head % this.chunkSize;
      if (c.at[i] >= beforeMs) break;
      if (c.status[i] === HELD) {
        this.held--;
        this.onRelease(c.campaign[i], this.priceOf(c, i, this.head), c.at[i]);
      }
      c.status[i] = 0;
      this.bigPrices.delete(this.head);
      this.head++;
      if (this.head % this.chunkSize === 0) {
        // Every offer of the first chunk is gone: keep one chunk for reuse, free the rest.
        this.spare = this.chunks.shift();
        this.firstChunk++;
      }
    }
  }

  /** Calls fn for each offer this user holds now, newest first. */
  forEachHeld(userIdx: number, fn: (o: HeldOffer) => void) {
    if (userIdx < 0 || userIdx >= this.userHead.length) return;
    let seq = this.fullSeq(this.userHead[userIdx]);
    const o: HeldOffer = { seq: 0, key: 0, campaign: 0, channel: 0, thread: 0, atMs: 0, priceMicros: 0 };
    while (seq >= this.head && seq < this.tail) {
      const c = this.chunkOf(seq);
      const i = seq % this.chunkSize;
      if (c.user[i] !== userIdx) break;
      if (c.status[i] === HELD) {
        o.seq = seq;
        o.campaign = c.campaign[i];
        o.channel = c.channel[i];
        o.thread = c.thread[i];
        o.key = c.key[i];
        o.atMs = c.at[i];
        o.priceMicros = this.priceOf(c, i, seq);
        fn(o);
      }
      seq = c.prev[i] === 0 ? 0 : seq - c.prev[i];
    }
  }

  /** The sequence number (the most recent one) whose low 32 bits are `low`; 0 for none. */
  private fullSeq(low: number) {
    if (low === 0) return 0;
    const seq = this.tail - 1 - ((((this.tail - 1) % LOW) - low + LOW) % LOW);
    return Math.max(seq, 0);
  }

  /** Offers made since start. */
  get made() {
    return this.count;
  }

  /** Bytes held by the chunks and the per-user heads. */
  get bytes() {
    return (
      (this.chunks.length + (this.spare ? 1 : 0)) * this.chunkSize * Chunk.BYTES + this.userHead.byteLength
    );
  }
}
