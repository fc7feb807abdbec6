import { describe, expect, it } from 'vitest';
import { OfferBook, threadHash } from './offers.ts';

const offer = (atMs: number, campaign = 0, channel = 1, thread = 'th') => ({
  key: atMs,
  campaign,
  channel,
  thread: threadHash(thread),
  atMs,
  priceMicros: 100 + campaign,
});

function held(book: OfferBook, user: number) {
  const out: number[] = [];
  book.forEachHeld(user, (o) => out.push(o.atMs));
  return out;
}

describe('offer book', () => {
  for (const start of [1, 2 ** 32 - 5]) {
    it(`walks each user's held offers, confirms and releases them (sequence from ${start})`, () => {
      const released: number[] = [];
      const book = new OfferBook((_c, price) => released.push(price), 4, start);
      const ids: string[] = [];
      // Ten offers to three users: the ring grows from 4 as it fills.
      for (let i = 0; i < 10; i++) ids.push(book.idOf(book.add(offer(1000 + i, i % 2), i % 3)));
      expect(book.held).toBe(10);
      expect(held(book, 0)).toEqual([1009, 1006, 1003, 1000]);
      expect(held(book, 1)).toEqual([1007, 1004, 1001]);
      expect(held(book, 7)).toEqual([]);
      expect(book.confirm(book.seqOf(ids[3]))).toBe('held');
      expect(book.confirm(book.seqOf(ids[3]))).toBe('seen');
      expect(held(book, 0)).toEqual([1009, 1006, 1000]);
      expect(released).toEqual([101]);
      book.expire(1005); // releases 1000..1004 still held (1003 was confirmed)
      expect(released).toEqual([101, 100, 101, 100, 100]);
      expect(held(book, 0)).toEqual([1009, 1006]);
      expect(book.seqOf(ids[0])).toBe(-1);
      expect(book.confirm(book.seqOf(ids[0]))).toBe('unknown');
      expect(book.seqOf('d_somebodyelse1')).toBe(-1);
      expect(book.held).toBe(5);
      expect(book.made).toBe(10);
    });
  }

  it('frees chunks as their offers are released, and keeps prices beyond 32 bits exact', () => {
    const released: number[] = [];
    const book = new OfferBook((_c, price) => released.push(price), 1000);
    for (let i = 0; i < 10_000; i++) book.add({ ...offer(i), priceMicros: i === 5 ? 9e12 : 7 }, i % 10);
    const full = book.bytes;
    book.expire(9_500);
    expect(book.bytes).toBeLessThan(full / 3); // 3 of 11 chunks left: two in use, one spare
    expect(released[5]).toBe(9e12);
    expect(released.filter((p) => p === 7)).toHaveLength(9_499);
    expect(held(book, 9)).toEqual([
      9_999, 9_989, 9_979, 9_969, 9_959, 9_949, 9_939, 9_929, 9_919, 9_909, 9_899, 9_889, 9_879, 9_869, 9_859,
      9_849, 9_839, 9_829, 9_819, 9_809, 9_799, 9_789, 9_779, 9_769, 9_759, 9_749, 9_739, 9_729, 9_719, 9_709,
      9_699, 9_689, 9_679, 9_669, 9_659, 9_649, 9_639, 9_629, 9_619, 9_609, 9_599, 9_589, 9_579, 9_569, 9_559,
      9_549, 9_539, 9_529, 9_519, 9_509,
    ]);
  });

  it('gives each process its own decision ids', () => {
    const a = new OfferBook(() => {});
    const b = new OfferBook(() => {});
    const id = a.idOf(a.add(offer(1), 0));
    expect(id).toMatch(/^d_[0-9a-f]{10}[0-9a-z]+$/);
    expect(b.seqOf(id)).toBe(-1);
    expect(a.seqOf(id)).toBeGreaterThan(0);
  });
});
