import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIM_KEYWORDS } from '../bin/sim/catalog.ts';
import { generateTraffic } from '../bin/sim/traffic.ts';
import { type Running, startParley } from '../bin/server.ts';
import { runSimulation, type SimulateOptions } from '../bin/simulate.ts';
import { parseConfig } from '../core/config.ts';
import { hashEmail } from '../core/events/privacy.ts';
import type { CanonicalEvent } from '../core/events/schema.ts';
import { createLogger } from '../core/log.ts';

// The simulator against a real Parley (embedded engine and log) on a fresh data directory.

const INGEST_KEY = 'sim-ingest-key-0123456789';
const ANALYST_KEY = 'sim-analyst-key-0123456789';
const NOW = Date.now();

let dir: string;
let running: Running;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-simulate-'));
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_KEYWORDS: SIM_KEYWORDS.join(','),
    PARLEY_SINK_BATCH_WAIT_MS: '50',
    PARLEY_API_KEYS: JSON.stringify([
      { key: INGEST_KEY, role: 'ingest' },
      { key: ANALYST_KEY, role: 'analyst' },
    ]),
  });
  running = await startParley(config, { logger: createLogger({ level: 'silent' }), out: () => {} });
});

afterAll(async () => {
  await running?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function storedEvents(): Promise<CanonicalEvent[]> {
  const all: CanonicalEvent[] = [];
  let cursor: string | null = null;
  do {
    const qs = new URLSearchParams({ limit: '1000', ...(cursor ? { cursor } : {}) });
    const res = await fetch(`${running.url}/v1/events?${qs}`, {
      headers: { authorization: `Bearer ${ANALYST_KEY}` },
    });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { events: CanonicalEvent[]; next: string | null };
    all.push(...page.events);
    cursor = page.next;
  } while (cursor);
  return all;
}

/** Polls until the sink has stored `n` events (it writes in batches, shortly after ingest). */
async function waitForStored(n: number): Promise<CanonicalEvent[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const events = await storedEvents();
    if (events.length >= n || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const quiet = { write: () => true, isTTY: false };

describe('parley simulate against a running Parley', () => {
  const opts = (): SimulateOptions => ({
    url: running.url,
    key: INGEST_KEY,
    businesses: 6,
    users: 120,
    days: 3,
    seed: 'integration',
    concurrency: 2,
    now: NOW,
    progress: quiet,
  });

  it('sends the whole population, all accepted, and every event is queryable in its private form', async () => {
    const lines: string[] = [];
    const result = await runSimulation({
      ...opts(),
      progress: { write: (s: string) => lines.push(s), isTTY: false },
    });
    expect(result.events).toBeGreaterThan(400);
    expect(result.accepted).toBe(result.events);
    expect(result.rejected).toBe(0);
    expect(result.users).toBe(120);
    expect(result.businesses).toBe(6);
    expect(result.conversions.count).toBeGreaterThan(0);
    expect(lines.at(-1)).toContain(
      `${result.events.toLocaleString('en-US')}/${result.events.toLocaleString('en-US')} events 100%`,
    );

    const sent = [...generateTraffic({ seed: 'integration', businesses: 6, users: 120, days: 3, now: NOW })];
    const stored = await waitForStored(sent.length);
    expect(stored.length).toBe(sent.length);
    expect(new Set(stored.map((e) => e.event_id))).toEqual(new Set(sent.map((e) => e.event_id)));
    const storedByType: Record<string, number> = {};
    for (const e of stored) storedByType[e.type] = (storedByType[e.type] ?? 0) + 1;
    expect(storedByType).toEqual(result.byType);

    const sentById = new Map(sent.map((e) => [e.event_id, e]));
    let keyworded = 0;
    for (const e of stored) {
      const original = sentById.get(e.event_id)!;
      expect(e.occurred_at).toBe(original.occurred_at);
      expect(e.props).not.toHaveProperty('text');
      expect(e.props).not.toHaveProperty('email');
      if (e.type === 'message.received') {
        expect(e.props.text_length).toBe([...(original.props.text as string)].length);
        if (Array.isArray(e.props.keywords)) keyworded++;
      }
      if (e.type === 'lead.submitted')
        expect(e.props.email_sha256).toBe(hashEmail(original.props.email as string));
      if (e.type === 'appointment.booked')
        expect(e.props).toMatchObject({ service: original.props.service, value: original.props.value });
    }
    expect(keyworded).toBeGreaterThan(0);
  });

  it('re-sending the same seed is idempotent: the same ids, nothing counted twice', async () => {
    const before = (await storedEvents()).length;
    const again = await runSimulation(opts());
    expect(again.accepted).toBe(before);
    await new Promise((r) => setTimeout(r, 1000)); // let the sink write the re-sent batch
    expect((await storedEvents()).length).toBe(before);
  });

  it('stops with a clear error when the key may not ingest', async () => {
    await expect(runSimulation({ ...opts(), key: ANALYST_KEY })).rejects.toThrow(
      /Parley refused the API key \(403 PARLEY_ERR_FORBIDDEN: .*role ingest.*\)\. Pass a key with role ingest or admin/,
    );
    await expect(runSimulation({ ...opts(), key: 'not-a-key-at-all-xxxx' })).rejects.toThrow(
      /refused the API key \(401 PARLEY_ERR_UNAUTHORIZED/,
    );
  });

  it('runs as `parley simulate` from the command line, printing a summary', async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        'bin/parley.js',
        'simulate',
        '--url',
        running.url,
        '--businesses',
        '4',
        '--users',
        '25',
        '--days',
        '2',
        '--seed',
        'cli',
        '--rate',
        '5000',
      ],
      { env: { ...process.env, PARLEY_API_KEY: INGEST_KEY }, cwd: join(import.meta.dirname, '..') },
    );
    expect(stderr).toMatch(/Simulating 25 users of 4 businesses over 2 days \(seed cli\)/);
    expect(stderr).toMatch(/events 100% · [\d,]+ events\/s · 0 rejected/);
    expect(stdout).toMatch(/^Simulated 2 days of traffic \(seed cli\)/);
    expect(stdout).toMatch(/message\.received\s+\d+/);
    expect(stdout).toMatch(/users\s+25\n/);
    expect(stdout).toMatch(/businesses\s+4\n/);
    expect(stdout).toMatch(/rejected\s+0\n/);
    const total = Number(/total events\s+([\d,]+)/.exec(stdout)![1].replace(/,/g, ''));
    expect(stdout).toMatch(new RegExp(`accepted\\s+${total.toLocaleString('en-US')}\\n`));
  });
});
