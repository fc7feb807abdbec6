import { describe, expect, it } from 'vitest';
import { gathering } from './gather.ts';

describe('gathering', () => {
  it('runs batches handed over together as one round, and those that come during it as the next', async () => {
    const rounds: number[][] = [];
    let release: () => void = () => {};
    const run = gathering<number>(async (items) => {
      rounds.push(items);
      if (rounds.length === 1) await new Promise<void>((r) => (release = r));
    });
    const first = [run([1, 2]), run([3])];
    await new Promise((r) => setTimeout(r, 20)); // the first round is running
    const second = [run([4]), run([5, 6])];
    release();
    await Promise.all([...first, ...second]);
    expect(rounds).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
  });

  it('rejects every batch of a failed round, and goes on with the next', async () => {
    let calls = 0;
    const run = gathering<string>(async (items) => {
      calls++;
      if (items.includes('bad')) throw new Error('refused');
    });
    const results = await Promise.allSettled([run(['a']), run(['bad'])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(run(['c'])).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });
});
