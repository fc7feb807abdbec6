import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnIn } from './helpers/process.ts';

// The command line says what is wrong, in a sentence, and exits non-zero.

const run = async (args: string[], env: Record<string, string> = {}) => {
  const p = spawnIn('node', ['bin/parley.js', ...args], env);
  const code = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
};

describe('parley command line', () => {
  it('prints help', async () => {
    const r = await run(['help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/parley start \[--role/);
  });

  it('refuses an unknown command and an unknown role', async () => {
    expect(await run(['frobnicate'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown command "frobnicate"/),
    });
    expect(await run(['start', '--role', 'chef'])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/unknown role chef; roles are ingest, processors, api/),
    });
  });

  it('explains invalid configuration', async () => {
    const r = await run(['start'], {
      PARLEY_PORT: 'eighty',
      PARLEY_API_KEYS: '[{"key":"short","role":"admin"}]',
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/invalid configuration/);
    expect(r.err).toMatch(/PARLEY_PORT/);
    expect(r.err).toMatch(/at least 16 characters/);
  });

  it('refuses separate roles on the embedded log and engine', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-cli-'));
    const r = await run(['start', '--role', 'ingest'], { PARLEY_DATA_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/needs PARLEY_KAFKA_BROKERS and PARLEY_CLICKHOUSE_URL/);
  });

  it('refuses a second process on the same data directory, naming the first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-cli-'));
    const first = spawnIn('node', ['bin/parley.js', 'start'], { PARLEY_DATA_DIR: dir, PARLEY_PORT: '0' });
    try {
      const end = Date.now() + 60_000;
      while (!first.stdout().includes('listening') && Date.now() < end)
        await new Promise((r) => setTimeout(r, 100));
      const second = await run(['start'], { PARLEY_DATA_DIR: dir, PARLEY_PORT: '0' });
      expect(second.code).toBe(1);
      expect(second.err).toMatch(new RegExp(`in use by process ${first.child.pid}`));
    } finally {
      first.kill('SIGTERM');
      await first.exited;
    }
  });
});
