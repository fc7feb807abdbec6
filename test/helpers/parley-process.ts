import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

// `node bin/parley.js …` as a child process, for tests of roles run as separate processes.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

export type ParleyProcess = {
  name: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves when the output matches: to the first capture group, or the whole match. */
  waitForOutput(re: RegExp, ms?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
};

export function spawnParley(name: string, args: string[], env: Record<string, string>): ParleyProcess {
  const child = spawn(process.execPath, ['bin/parley.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PARLEY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
    for (const l of listeners) l();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((ok) =>
    child.once('exit', (c, sig) => {
      code = c ?? (sig ? -1 : null);
      for (const l of listeners) l();
      ok(code);
    }),
  );
  return {
    name,
    child,
    output: () => out,
    exited,
    waitForOutput(re, ms = 60_000) {
      return new Promise((ok, fail) => {
        const check = () => {
          const m = re.exec(out);
          if (m) done(() => ok(m[1] ?? m[0]));
          else if (code !== undefined)
            done(() =>
              fail(new Error(`${name} exited (${code}) before printing ${re}:\n${out.slice(-3000)}`)),
            );
        };
        const timer = setTimeout(
          () =>
            done(() => fail(new Error(`${name} did not print ${re} within ${ms} ms:\n${out.slice(-3000)}`))),
          ms,
        );
        const done = (f: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (code === undefined) child.kill(signal);
      return exited;
    },
  };
}

export { waitFor } from './process.ts';
