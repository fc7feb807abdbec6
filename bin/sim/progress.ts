// A progress line on stderr: redrawn in place on a terminal, printed every few seconds otherwise
// (logs and CI keep a readable history instead of a wall of carriage returns).

export type ProgressStream = { write(s: string): unknown; isTTY?: boolean };
export type ProgressState = { sent: number; rejected: number; retries?: number };

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

export function renderProgress(total: number, s: ProgressState, elapsedMs: number, width = 24): string {
  const ratio = total > 0 ? Math.min(1, s.sent / total) : 1;
  const filled = Math.round(ratio * width);
  const rate = elapsedMs > 0 ? (s.sent / elapsedMs) * 1000 : 0;
  const retries = s.retries ? ` · ${fmt(s.retries)} retries` : '';
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${fmt(s.sent)}/${fmt(total)} events ${Math.floor(ratio * 100)}% · ${fmt(rate)} events/s · ${fmt(s.rejected)} rejected${retries}`;
}

export function createProgress(opts: {
  total: number;
  stream: ProgressStream;
  intervalMs?: number;
  now?: () => number;
}) {
  const now = opts.now ?? (() => performance.now());
  const tty = Boolean(opts.stream.isTTY);
  const interval = opts.intervalMs ?? (tty ? 100 : 2000);
  const started = now();
  let last = Number.NEGATIVE_INFINITY;
  let state: ProgressState = { sent: 0, rejected: 0 };
  const draw = () => {
    const line = renderProgress(opts.total, state, now() - started);
    opts.stream.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    last = now();
  };
  return {
    update(s: ProgressState) {
      state = s;
      if (now() - last >= interval) draw();
    },
    done() {
      draw();
      if (tty) opts.stream.write('\n');
    },
  };
}
