#!/usr/bin/env node
// Fuzzes Parley's served OpenAPI document with schemathesis: no 5xx, and every answer as the
// document says (status, content type, headers, body). Schemathesis is installed once into
// .venv-schemathesis/ (like .kafka/ for the broker); Parley runs embedded on a fresh data
// directory with an admin key made for the run. Bounded by FUZZ_MAX_TIME seconds (default 150).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCHEMATHESIS = 'schemathesis==4.32.5';
const root = fileURLToPath(new URL('../', import.meta.url));
const venv = join(root, '.venv-schemathesis');
const st = join(venv, 'bin', 'schemathesis');
const stamp = join(venv, 'parley-installed');
const maxTime = process.env.FUZZ_MAX_TIME || '150';

function ensureSchemathesis() {
  if (existsSync(st) && existsSync(stamp) && readFileSync(stamp, 'utf8') === SCHEMATHESIS) return;
  process.stderr.write(`fuzz: installing ${SCHEMATHESIS} into .venv-schemathesis/ (once)...\n`);
  const steps = [
    ['python3', ['-m', 'venv', venv]],
    [join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', SCHEMATHESIS]],
  ];
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { stdio: 'inherit' });
    if (r.status !== 0)
      throw new Error(`${cmd} ${args.join(' ')} failed (needs Python 3.9+ with venv, and PyPI)`);
  }
  writeFileSync(stamp, SCHEMATHESIS);
}

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

// Schemathesis heads its sections and ends its report with pytest-style rules ("==== SUMMARY ====",
// "==== 3 warnings in 150.0s ===="), which log readers that look for a pytest summary take for a
// run with no test. Its output is passed through line by line, with those rules written as what
// they are: headings of the fuzz run's report, and its end.
const PYTEST_END = /^=+ (.+ in [\d.]+s) =+$/;
const PYTEST_HEADING = /^=+ (.+?) =+$/;

function schemathesis(args) {
  return new Promise((resolve) => {
    const child = spawn(st, args, {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      // Serializers for media types schemathesis lacks (NDJSON events).
      env: { ...process.env, SCHEMATHESIS_HOOKS: join(root, 'scripts', 'fuzz_hooks.py') },
    });
    let cases = '';
    let rest = '';
    const line = (l) => {
      const trimmed = l.trim();
      if (/^\d+ generated/.test(trimmed)) cases = trimmed;
      const end = PYTEST_END.exec(trimmed);
      const heading = end ? null : PYTEST_HEADING.exec(trimmed);
      process.stdout.write(
        end
          ? `OpenAPI fuzz run finished: ${cases ? `test cases ${cases}; ` : ''}${end[1]}\n`
          : heading
            ? `-- OpenAPI fuzz run: ${heading[1].toLowerCase()} --\n`
            : `${l}\n`,
      );
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) line(l);
    });
    child.on('error', (err) => {
      process.stderr.write(`fuzz: ${err.message}\n`);
      resolve(1);
    });
    child.on('close', (code) => {
      if (rest) line(rest);
      resolve(code ?? 1);
    });
  });
}

async function main() {
  ensureSchemathesis();
  const dir = mkdtempSync(join(tmpdir(), 'parley-fuzz-'));
  const port = await freePort();
  const key = `pk_fuzz_${randomBytes(18).toString('hex')}`;
  const parley = spawn(process.execPath, ['bin/parley.js', 'start'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PARLEY_DATA_DIR: dir,
      PARLEY_PORT: String(port),
      PARLEY_LOG_LEVEL: 'warn',
      PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
      // The fuzzer sends many requests with one key: limits would only answer 429.
      PARLEY_RATE_LIMIT_AUTH_FAILURES: '0',
      PARLEY_RATE_LIMIT_KEY_REQUESTS: '0',
      // Webhooks configured, as in production: unsigned or badly signed deliveries get 4xx.
      PARLEY_META_APP_SECRET: randomBytes(16).toString('hex'),
      PARLEY_META_VERIFY_TOKEN: randomBytes(16).toString('hex'),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    const deadline = Date.now() + 90_000;
    for (;;) {
      const ok = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline || parley.exitCode !== null)
        throw new Error('Parley did not start for the fuzz run');
      await new Promise((r) => setTimeout(r, 250));
    }
    const args = [
      'run',
      `${url}/openapi.json`,
      '--header',
      `Authorization: Bearer ${key}`,
      '--checks',
      'not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance',
      '--phases',
      'examples,coverage,fuzzing',
      '--max-examples',
      process.env.FUZZ_MAX_EXAMPLES || '25',
      '--max-time',
      maxTime,
      '--seed',
      process.env.FUZZ_SEED || '16',
      // One worker: with two threads, CPython 3.11 before 3.11.8 can fail hypothesis's ast.parse with
      // "AST constructor recursion depth mismatch" (python/cpython#106905), a crash of the fuzzer
      // that is no finding about the API.
      '--workers',
      '1',
      '--request-timeout',
      '20',
      '--suppress-health-check',
      'all',
      '--no-color',
      ...process.argv.slice(2),
    ];
    return await schemathesis(args);
  } finally {
    parley.kill('SIGTERM');
    await new Promise((r) => (parley.exitCode !== null ? r() : parley.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`fuzz: ${err.message}\n`);
    process.exit(1);
  },
);
