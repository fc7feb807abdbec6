import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export type Proc = {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Signals the whole process group (npm and the server it runs). */
  kill(sig?: NodeJS.Signals): void;
};

/** Spawns a command in the repo with only the given PARLEY_* settings (plus PATH and HOME). */
export function spawnIn(cmd: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      PARLEY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so npm and the node it starts get the same signal
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const kill = (sig: NodeJS.Signals = 'SIGTERM') => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {}
  };
  return { child, stdout: () => out, stderr: () => err, exited, kill };
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  ms = 60_000,
  every = 100,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export async function waitHealthy(url: string, proc?: Proc, ms = 60_000) {
  return waitFor(
    `${url}/healthz`,
    async () => {
      if (proc && proc.child.exitCode !== null)
        throw new Error(`process exited: ${proc.stderr().slice(-2000)}`);
      const r = await fetch(`${url}/healthz`);
      return r.ok;
    },
    ms,
  );
}

/** Reads one gauge or counter value from /metrics, with a key of role metrics or admin. */
export async function metric(
  url: string,
  key: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (want.every((w) => rest.includes(w))) return Number(line.split(' ').at(-1));
  }
  return undefined;
}
