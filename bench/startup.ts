// Start-up of `parley start` on the embedded defaults with a fresh data directory: time from
// spawn to "listening", CPU time until then and resident memory 2 s later, for the compiled
// JavaScript (`npm run start:built`, the baseline) and the TypeScript through tsx (`npm start`),
// alternated run by run. Builds dist/ first when it is missing.
//
//   node bench/run.js startup [--runs 5]

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { printTable } from './table.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const root = new URL('../', import.meta.url).pathname;

if (!existsSync(join(root, 'dist/bin/cli.js'))) {
  const built = spawnSync(process.execPath, ['scripts/build.js'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
}

const variants = {
  'compiled (npm run start:built)': ['--max-semi-space-size=32', 'dist/bin/cli.js', 'start'],
  'tsx (npm start)': ['--max-semi-space-size=32', 'bin/parley.js', 'start'],
} as const;
type Run = { ms: number; cpuMs: number; rssMb: number };

/** Resident memory and CPU time (user + system) of a process, from /proc. */
function usage(pid: number) {
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100/s)
  return { rssMb: rssKb / 1024, cpuMs: ticks * 10 };
}

async function once(args: readonly string[]): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-startup-'));
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PARLEY_DATA_DIR: dir, PARLEY_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  try {
    const ms = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (/listening on/.test(out)) resolve(performance.now() - t0);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code} before listening: ${out.slice(-500)}`)));
    });
    const { cpuMs } = usage(child.pid ?? 0);
    await new Promise((r) => setTimeout(r, 2000));
    const { rssMb } = usage(child.pid ?? 0);
    return { ms, cpuMs, rssMb };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.on('exit', r) : r(null)));
    await rm(dir, { recursive: true, force: true });
  }
}

const results = new Map<string, Run[]>(Object.keys(variants).map((k) => [k, []]));
for (let i = 0; i < RUNS; i++)
  for (const [name, args] of Object.entries(variants)) results.get(name)?.push(await once(args));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const range = (xs: number[], digits: number) =>
  `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
const base = median(results.get('compiled (npm run start:built)')?.map((r) => r.ms) ?? [1]);
printTable(`parley start, embedded defaults, fresh data directory, ${RUNS} runs each (alternated)`, [
  ['how', 'to listening s (median)', 'range s', 'CPU to listening s', 'resident MB 2 s later', 'vs compiled'],
  ...[...results].map(([name, runs]) => [
    name,
    (median(runs.map((r) => r.ms)) / 1000).toFixed(2),
    range(
      runs.map((r) => r.ms / 1000),
      2,
    ),
    range(
      runs.map((r) => r.cpuMs / 1000),
      2,
    ),
    range(
      runs.map((r) => r.rssMb),
      0,
    ),
    (median(runs.map((r) => r.ms)) / base).toFixed(2),
  ]),
]);
