import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { type Proc, freePort, spawnIn, waitFor, waitHealthy } from './helpers/process.ts';

// What a new user does: run the README's start command on a fresh data directory with no
// configuration, take the printed admin key, send events, read them back.

let proc: Proc | undefined;
afterAll(async () => {
  proc?.kill('SIGKILL');
  await proc?.exited;
});

it('npm start on a fresh data dir: prints an admin key once, ingests, serves the events back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-newuser-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // The README's own start command, keywords included.
  const readme = await readFile(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const keywords = /^PARLEY_KEYWORDS='([^']+)' npm start$/m.exec(readme)?.[1];
  expect(keywords, 'README "Run it" starts Parley with PARLEY_KEYWORDS').toMatch(/haircut/);
  const env = { PARLEY_DATA_DIR: dir, PARLEY_PORT: String(port), PARLEY_KEYWORDS: keywords! };
  proc = spawnIn('npm', ['start'], env);
  await waitHealthy(url, proc, 90_000);
  const key = /PARLEY_ADMIN_KEY=(\S+)/.exec(proc.stdout())?.[1];
  expect(key, proc.stdout()).toMatch(/^pk_admin_/);

  const now = Date.now();
  const events = Array.from({ length: 25 }, (_, i) => ({
    event_id: `nu-${i}`,
    type: i % 5 === 4 ? 'appointment.booked' : 'message.received',
    occurred_at: new Date(now - 60_000 + i * 1000).toISOString(),
    business_id: 'biz_barber_42',
    user_id: `u_${i % 3}`,
    channel: 'whatsapp',
    props:
      i % 5 === 4 ? { service: 'haircut', value: 25, currency: 'EUR' } : { text: 'can I book a haircut?' },
  }));
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  expect(res.status).toBe(202);
  expect(await res.json()).toEqual({ accepted: 25, rejected: [] });

  const page = await waitFor('events to be queryable', async () => {
    const r = await fetch(`${url}/v1/events?limit=100`, { headers: { authorization: `Bearer ${key}` } });
    const body = (await r.json()) as { events: { event_id: string; props: Record<string, unknown> }[] };
    return body.events.length === 25 && body;
  });
  expect(page.events[0].event_id).toBe('nu-24');
  expect(JSON.stringify(page)).not.toContain('can I book');
  // Keyword segments have something to work with: the keyword is kept, the text is not.
  expect(page.events.find((e) => e.event_id === 'nu-0')?.props).toEqual({
    text_length: 21,
    keywords: ['haircut'],
  });

  // The key is printed only on the first start.
  proc.kill('SIGTERM');
  await proc.exited;
  expect(proc.stderr()).not.toMatch(/shutdown failed/);
  proc = spawnIn('npm', ['start'], env);
  await waitHealthy(url, proc, 90_000);
  expect(proc.stdout()).not.toContain('PARLEY_ADMIN_KEY');
  const again = await fetch(`${url}/v1/events?limit=1`, { headers: { authorization: `Bearer ${key}` } });
  expect(again.status).toBe(200);
});
