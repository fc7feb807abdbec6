import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config.ts';
import { DEFAULT_HOLDOUT_KEY, holdoutGroup, holdoutPosition, inHoldout } from './holdout.ts';

describe('inHoldout', () => {
  it('holds out about the configured share of 100,000 users (within 4 binomial standard deviations)', () => {
    const n = 100_000;
    for (const share of [0.05, 0.1, 0.5]) {
      let held = 0;
      for (let i = 0; i < n; i++) if (inHoldout('cmp_a', `u_${i}`, share)) held++;
      const sd = Math.sqrt(n * share * (1 - share));
      expect(Math.abs(held - n * share)).toBeLessThan(4 * sd);
    }
  });

  it('draws each campaign independently', () => {
    let both = 0;
    let a = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const inA = inHoldout('cmp_a', `u_${i}`, 0.5);
      if (inA) a++;
      if (inA && inHoldout('cmp_b', `u_${i}`, 0.5)) both++;
    }
    // Independent: about half of A's control group is also in B's.
    expect(Math.abs(both - a / 2)).toBeLessThan(4 * Math.sqrt(a * 0.25));
  });

  it('is nested across shares, and 0 (or no holdout) holds out nobody', () => {
    for (let i = 0; i < 2000; i++) {
      const u = `u_${i}`;
      if (inHoldout('c', u, 0.1)) expect(inHoldout('c', u, 0.2)).toBe(true);
      expect(inHoldout('c', u, 0)).toBe(false);
      expect(holdoutGroup({ id: 'c' }, u)).toBe('treatment');
      expect(holdoutGroup({ id: 'c', holdout: 0.3 }, u)).toBe(
        inHoldout('c', u, 0.3) ? 'control' : 'treatment',
      );
    }
  });

  it('depends on the key, and is the same in another process (stable across restarts)', () => {
    const users = Array.from({ length: 200 }, (_, i) => `u_${i}`);
    const here = users.map((u) => holdoutPosition('cmp_x', u));
    const other = users.map((u) => holdoutPosition('cmp_x', u, 'another-key'));
    expect(other).not.toEqual(here);
    expect(parseConfig({}).holdoutKey).toBe(DEFAULT_HOLDOUT_KEY);
    expect(parseConfig({ PARLEY_HOLDOUT_KEY: 'another-key' }).holdoutKey).toBe('another-key');
    expect(users.map((u) => holdoutPosition('cmp_x', u, DEFAULT_HOLDOUT_KEY))).toEqual(here);
    const script = `import { holdoutPosition } from './core/campaigns/holdout.ts';
console.log(JSON.stringify(${JSON.stringify(users)}.map((u) => holdoutPosition('cmp_x', u))));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual(here);
    // A known value pins the hash itself: a change of algorithm would reshuffle live holdouts.
    expect(holdoutPosition('cmp_1', 'u_1').toFixed(12)).toBe('0.931305788753');
  });
});
