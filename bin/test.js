#!/usr/bin/env node
// `npm test`: runs the whole suite, the Kafka suite included, on a real broker.
// PARLEY_KAFKA_BROKERS set: that broker is used. Unset: the local broker (scripts/kafka.sh) is
// started for the run and stopped afterwards if this runner started it. If no broker can be had,
// the run fails loudly; PARLEY_SKIP_KAFKA=1 skips the Kafka suite on purpose, and says so.
// The browser suite (the dashboards) drives Debian's Chromium at /usr/bin/chromium: when it is
// missing, it is installed through apt-get if this runs as root on Debian, else the run fails
// with how to install it; PARLEY_SKIP_BROWSER=1 skips the browser suite on purpose, and says so.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const script = 'scripts/kafka.sh';
const KAFKA_TESTS = 'test/kafka/**';
const BROWSER_TESTS = 'test/browser/**';
const CHROMIUM = '/usr/bin/chromium';
const env = { ...process.env };
// Output that goes to a file or a CI log is plain text (vitest colours its summary whenever CI is
// set): the summary lines then read as they do on a terminal, "Tests  568 passed (568)".
if (!process.stdout.isTTY) {
  env.NO_COLOR = '1';
  delete env.FORCE_COLOR;
}
const args = process.argv.slice(2);
const wholeSuite = args.length === 0;

function banner(lines) {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = '#'.repeat(width);
  process.stderr.write(`\n${bar}\n${lines.map((l) => `# ${l.padEnd(width - 4)} #`).join('\n')}\n${bar}\n\n`);
}

// Progress (stdout, e.g. the first fetch from Maven Central) is shown as it comes; errors
// (stderr) are kept for the banner.
function kafka(cmd, { quiet = false } = {}) {
  const stdio = ['ignore', quiet ? 'ignore' : 'inherit', 'pipe'];
  const r = spawnSync('bash', [script, cmd], { cwd: root, env, encoding: 'utf8', stdio });
  return { ok: r.status === 0, out: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
}

if (env.PARLEY_SKIP_BROWSER === '1') {
  args.push('--exclude', BROWSER_TESTS);
  banner([
    'THE BROWSER SUITE WAS SKIPPED (PARLEY_SKIP_BROWSER=1).',
    'Nothing about the dashboards in a browser was tested in this run.',
    'Unset PARLEY_SKIP_BROWSER to run it (it needs Chromium at /usr/bin/chromium).',
  ]);
} else if (existsSync(CHROMIUM)) {
  process.stderr.write(`Browser suite: using ${CHROMIUM}\n`);
} else if (process.getuid?.() === 0 && existsSync('/etc/debian_version')) {
  process.stderr.write('Browser suite: installing Chromium (apt-get install chromium fonts-liberation)...\n');
  const apt = (a) =>
    spawnSync('apt-get', a, { stdio: 'inherit', env: { ...env, DEBIAN_FRONTEND: 'noninteractive' } });
  const ok =
    apt(['update']).status === 0 && apt(['install', '-y', 'chromium', 'fonts-liberation']).status === 0;
  if (!ok || !existsSync(CHROMIUM)) {
    banner([
      'THE BROWSER SUITE CANNOT RUN: installing Chromium with apt-get failed.',
      'Install it with: apt-get update && apt-get install -y chromium fonts-liberation',
      'To run everything else on purpose, set PARLEY_SKIP_BROWSER=1.',
    ]);
    process.exit(1);
  }
} else {
  banner([
    `THE BROWSER SUITE CANNOT RUN: no Chromium at ${CHROMIUM}.`,
    'On Debian or Ubuntu, as root: apt-get update && apt-get install -y chromium fonts-liberation',
    '(npm test installs it itself when run as root on Debian.)',
    'To run everything else on purpose, set PARLEY_SKIP_BROWSER=1.',
  ]);
  process.exit(1);
}

let startedBroker = false;
if (env.PARLEY_KAFKA_BROKERS) {
  process.stderr.write(
    `Kafka suite: using the broker(s) in PARLEY_KAFKA_BROKERS=${env.PARLEY_KAFKA_BROKERS}\n`,
  );
} else if (env.PARLEY_SKIP_KAFKA === '1') {
  args.push('--exclude', KAFKA_TESTS);
  banner([
    'THE KAFKA SUITE WAS SKIPPED (PARLEY_SKIP_KAFKA=1).',
    'Nothing about Kafka mode was tested in this run.',
    'Unset PARLEY_SKIP_KAFKA, or set PARLEY_KAFKA_BROKERS, to run it.',
  ]);
} else {
  const wasRunning = kafka('status', { quiet: true }).ok;
  process.stderr.write(
    wasRunning
      ? 'Kafka suite: the local broker is already running\n'
      : 'Kafka suite: starting the local broker (scripts/kafka.sh up)...\n',
  );
  const up = kafka('up');
  if (!up.ok) {
    banner([
      'THE KAFKA SUITE CANNOT RUN: the local Kafka broker did not start.',
      ...up.out
        .split('\n')
        .slice(-15)
        .map((l) => `  ${l}`),
      'It needs Java 17 and Maven (to fetch Kafka from Maven Central once),',
      'or set PARLEY_KAFKA_BROKERS=host:port to use a running broker.',
      'To run everything else on purpose, set PARLEY_SKIP_KAFKA=1.',
    ]);
    process.exit(1);
  }
  startedBroker = !wasRunning;
  env.PARLEY_KAFKA_BROKERS = `127.0.0.1:${env.PARLEY_KAFKA_PORT || '19092'}`;
  process.stderr.write(`Kafka suite: broker ready at ${env.PARLEY_KAFKA_BROKERS}\n`);
}
// Tests that stop a broker start their own instance with this script, never the shared one.
env.PARLEY_TEST_KAFKA_SCRIPT ||= script;

// The OpenAPI fuzz run goes first, so the test suite's own summary is the last thing printed; a
// failed fuzz run still lets the suite run, and fails the whole run at the end.
const fuzzStatus = wholeSuite ? fuzz() : 0;

const child = spawn('npx', ['vitest', 'run', ...args], { cwd: root, env, stdio: 'inherit' });
const forward = (sig) => child.kill(sig);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
child.on('exit', (code, signal) => {
  if (startedBroker) {
    const down = kafka('down', { quiet: true });
    if (!down.ok) process.stderr.write(`stopping the local broker failed:\n${down.out}\n`);
  }
  const suite = code ?? (signal ? 1 : 0);
  if (fuzzStatus !== 0)
    banner([`THE OPENAPI FUZZ RUN FAILED (exit ${fuzzStatus}); see its output above the test suite's.`]);
  process.exit(suite !== 0 ? suite : fuzzStatus);
});

// The OpenAPI fuzz run (scripts/fuzz.js, schemathesis), before the whole suite.
function fuzz() {
  if (env.PARLEY_SKIP_FUZZ === '1') {
    banner([
      'THE OPENAPI FUZZ RUN WAS SKIPPED (PARLEY_SKIP_FUZZ=1).',
      'No answer was checked against the OpenAPI document in this run.',
      'Unset PARLEY_SKIP_FUZZ to run it (node scripts/fuzz.js).',
    ]);
    return 0;
  }
  process.stderr.write('OpenAPI fuzz run: node scripts/fuzz.js\n');
  return spawnSync(process.execPath, ['scripts/fuzz.js'], { cwd: root, env, stdio: 'inherit' }).status ?? 1;
}
