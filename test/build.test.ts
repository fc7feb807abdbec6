import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ROOT, spawnIn, waitFor } from './helpers/process.ts';

// `npm run build` compiles what production runs (the Docker image's entry point is the compiled
// dist/bin/cli.js); the compiled Parley starts on the embedded defaults, takes an event and
// serves it back, so nothing it needs at run time is left to the TypeScript sources or to tsx.

const work = join(ROOT, '.test-data', `build-${randomBytes(4).toString('hex')}`);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

it('the compiled JavaScript starts, ingests and answers queries', { timeout: 240_000 }, async () => {
  await mkdir(work, { recursive: true });
  const out = join(work, 'dist');
  const build = spawnIn('node', ['scripts/build.js', '--out', out], {});
  expect(await build.exited, build.stderr() + build.stdout()).toBe(0);

  const key = `pk_test_admin_${randomBytes(12).toString('hex')}`;
  const p = spawnIn('node', ['--max-semi-space-size=32', join(out, 'bin/cli.js'), 'start'], {
    PARLEY_DATA_DIR: await mkdtemp(join(work, 'data-')),
    PARLEY_PORT: '0',
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
  });
  try {
    const url = await waitFor('listening', async () => {
      if (p.child.exitCode !== null) throw new Error(`exited: ${p.stderr().slice(-2000)}`);
      return /Parley is listening on (http:\S+)/.exec(p.stdout())?.[1];
    });
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const event = {
      event_id: 'e-build-1',
      type: 'message.received',
      occurred_at: new Date().toISOString(),
      business_id: 'b1',
      user_id: 'u1',
      channel: 'whatsapp',
      props: {},
    };
    const res = await fetch(`${url}/v1/events`, { method: 'POST', headers, body: JSON.stringify([event]) });
    expect(res.status).toBe(202);
    await waitFor('the event stored', async () => {
      const r = await fetch(`${url}/v1/events?limit=10`, { headers });
      return r.ok && JSON.stringify(await r.json()).includes('e-build-1');
    });
  } finally {
    p.kill('SIGTERM');
    await p.exited;
  }
});
