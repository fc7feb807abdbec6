import { describe, expect, it } from 'vitest';
import { createProgress, renderProgress } from './progress.ts';

const sink = (isTTY: boolean) => {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => writes.push(s) } };
};

describe('progress', () => {
  it('renders sent/total, percentage, rate and rejections', () => {
    expect(renderProgress(2000, { sent: 500, rejected: 3 }, 250, 8)).toBe(
      '[██░░░░░░] 500/2,000 events 25% · 2,000 events/s · 3 rejected',
    );
    expect(renderProgress(10, { sent: 10, rejected: 0, retries: 2 }, 1000, 4)).toBe(
      '[████] 10/10 events 100% · 10 events/s · 0 rejected · 2 retries',
    );
  });

  it('redraws in place on a terminal, throttled', () => {
    let t = 0;
    const { writes, stream } = sink(true);
    const p = createProgress({ total: 100, stream, now: () => t });
    p.update({ sent: 10, rejected: 0 });
    t = 50;
    p.update({ sent: 20, rejected: 0 }); // within 100 ms: not drawn
    t = 150;
    p.update({ sent: 30, rejected: 0 });
    p.done();
    expect(writes.slice(0, 3).map((w) => w.startsWith('\r\x1b[2K'))).toEqual([true, true, true]);
    expect(writes.some((w) => w.includes(' 20/100 '))).toBe(false);
    expect(writes.at(-2)).toContain(' 30/100 ');
    expect(writes.at(-1)).toBe('\n');
  });

  it('prints whole lines every few seconds when stderr is not a terminal', () => {
    let t = 0;
    const { writes, stream } = sink(false);
    const p = createProgress({ total: 100, stream, now: () => t });
    for (let i = 1; i <= 10; i++) {
      t = i * 500;
      p.update({ sent: i * 10, rejected: 0 });
    }
    p.done();
    expect(writes.every((w) => w.endsWith('\n') && !w.includes('\r'))).toBe(true);
    expect(writes.length).toBe(4); // 500 ms, 2,500 ms, 4,500 ms and the final line
    expect(writes.at(-1)).toContain(' 100/100 events 100%');
  });
});
