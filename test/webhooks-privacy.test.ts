// Every webhook fixture, signed and posted to a running Parley (embedded engine and log), then a
// scan of every stored row of every table and of every file under the data directory: no raw
// message text, phone number, WhatsApp message id (it encodes the number) or contact name anywhere.
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Running, startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { keyedId } from '../core/events/privacy.ts';
import { createLogger } from '../core/log.ts';
import { signBody } from '../ingest/webhooks/signature.ts';
import { deliver, fixture, fixtureNames, fixtureText, platformOf } from '../ingest/webhooks/test-helpers.ts';

const APP_SECRET = 'privacy-test-app-secret';
const INGEST_KEY = 'pk_privacy_ingest_0123456789';

// Values that must never be stored, wherever they sit in a delivery.
const PRIVATE_KEYS = new Set([
  'text',
  'body',
  'caption',
  'name',
  'formatted_name',
  'first_name',
  'last_name',
  'wa_id',
  'from',
  'recipient_id',
  'phone',
  'display_phone_number',
  'address',
  'email',
  'filename',
  'metadata',
]);

function collectNeedles(node: unknown, parent = '', out = new Set<string>()): Set<string> {
  if (typeof node === 'string') {
    if (node.startsWith('wamid.')) out.add(node);
    return out;
  }
  if (Array.isArray(node)) {
    for (const v of node) collectNeedles(v, parent, out);
    return out;
  }
  if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      // A template button's text is its label, kept as the postback title by design.
      if (typeof v === 'string' && PRIVATE_KEYS.has(k) && !(parent === 'button' && k === 'text')) {
        out.add(v);
        const digits = v.replace(/\D/g, '');
        if (digits.length >= 10 && /^[+\d\s().-]+$/.test(v)) out.add(digits).add(digits.slice(-7));
      }
      collectNeedles(v, k, out);
    }
  }
  return out;
}

let dir: string;
let running: Running;
let logFile: ReturnType<typeof createWriteStream>;
const needles = new Set<string>();
let distinct = 0;

async function filesUnder(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-webhooks-privacy-'));
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_API_KEYS: JSON.stringify([{ key: INGEST_KEY, role: 'ingest' }]),
    PARLEY_META_APP_SECRET: APP_SECRET,
    PARLEY_META_VERIFY_TOKEN: 'privacy-verify-token',
    PARLEY_HASH_SECRET: 'privacy-test-hash-secret',
    PARLEY_KEYWORDS: 'haircut,saturday',
    PARLEY_SINK_BATCH_WAIT_MS: '50',
  });
  // The process log goes to a file in the data directory too, at debug level, so it is scanned.
  logFile = createWriteStream(join(dir, 'parley.log'));
  running = await startParley(config, {
    logger: createLogger({ level: 'debug', destination: logFile }),
    out: () => {},
  });
  const ids = new Set<string>();
  for (const name of fixtureNames()) {
    collectNeedles(fixture(name), '', needles);
    for (const e of deliver(platformOf(name), fixture(name)).events) ids.add(e.event_id);
  }
  distinct = ids.size;
});

afterAll(async () => {
  await running?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('webhook privacy', () => {
  it('stores every fixture once, and no raw text, number, message id or name anywhere', async () => {
    expect(needles.size).toBeGreaterThan(30);
    expect([...needles]).toEqual(
      expect.arrayContaining([
        '16505551234',
        'Sheena Nelson',
        'Barbara J. Johnson',
        'Can I book a haircut for Friday morning?',
      ]),
    );

    // Every fixture twice: platform retries collapse to one stored event each.
    for (const round of [1, 2]) {
      for (const name of fixtureNames()) {
        const body = fixtureText(name);
        const res = await fetch(`${running.url}/v1/webhooks/${platformOf(name)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(APP_SECRET, body) },
          body,
        });
        expect(res.status, `${name} (round ${round})`).toBe(200);
      }
    }
    const db = running.store.database;
    const client = running.store.client;
    const count = async () => {
      const rs = await client.query({
        query: `SELECT count() AS n FROM ${db}.events FINAL`,
        format: 'JSONEachRow',
      });
      return Number((await rs.json<{ n: string }>())[0].n);
    };
    const deadline = Date.now() + 20_000;
    while ((await count()) < distinct && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await count()).toBe(distinct);

    const tables = await (
      await client.query({
        query: 'SELECT name FROM system.tables WHERE database = {db:String}',
        query_params: { db },
        format: 'JSONEachRow',
      })
    ).json<{ name: string }>();
    expect(tables.map((t) => t.name)).toContain('events');
    let rows = 0;
    for (const { name } of tables) {
      const text = await (
        await client.query({ query: `SELECT * FROM ${db}.\`${name}\``, format: 'JSONEachRow' })
      ).text();
      rows += text.split('\n').filter(Boolean).length;
      for (const n of needles) expect(text.includes(n), `${n} in table ${name}`).toBe(false);
    }
    expect(rows).toBeGreaterThanOrEqual(distinct);

    // Then every file under the data directory: the embedded log (events and dead letters), the
    // engine's own files and the process log, once everything is flushed and closed.
    await running.stop();
    await new Promise<void>((resolve) => logFile.end(resolve));
    const files = await filesUnder(dir);
    expect(files.some((f) => f.includes(`${join(dir, 'log')}`))).toBe(true);
    const logText = await readFile(join(dir, 'parley.log'), 'utf8');
    expect(logText).toContain('parley started');
    // The scan reads real content: the pseudonymous WhatsApp user id is in the embedded log.
    const pseudonym = Buffer.from(keyedId('privacy-test-hash-secret', '16505551234'));
    let seen = false;
    for (const f of files) {
      const bytes = await readFile(f);
      seen ||= bytes.includes(pseudonym);
      for (const n of needles) expect(bytes.includes(Buffer.from(n, 'utf8')), `${n} in ${f}`).toBe(false);
    }
    expect(seen).toBe(true);
  });
});
