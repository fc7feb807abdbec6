import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatAdServerSummary, runAdServer, splitAdServerArgs, trueRates } from '../bin/sim/adserver.ts';
import { type Running, startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';

// `parley simulate --adserver` against a real Parley (embedded engine and log): what it reports
// delivered (through signed Messenger/WhatsApp webhooks and POST /v1/impressions), clicked and
// ordered is what Parley stored; offers never delivered leave no impression.

const KEY = 'sim-admin-key-0123456789abcdef';
const APP_SECRET = 'sim-meta-app-secret';
let dir: string;
let running: Running;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-sim-ads-'));
  const config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_SINK_BATCH_WAIT_MS: '50',
    PARLEY_API_KEYS: JSON.stringify([{ key: KEY, role: 'admin' }]),
    PARLEY_META_APP_SECRET: APP_SECRET,
    PARLEY_HASH_SECRET: 'sim-hash-secret',
  });
  running = await startParley(config, { logger: createLogger({ level: 'silent' }), out: () => {} });
});

afterAll(async () => {
  await running?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('parley simulate --adserver', () => {
  it('asks for decisions, delivers 90%, clicks at known rates, orders, and Parley stores exactly that', async () => {
    const r = await runAdServer({
      url: running.url,
      key: KEY,
      seed: 't1',
      users: 600,
      decisions: 600,
      campaigns: 3,
      metaAppSecret: APP_SECRET,
    });
    expect(r.asked).toBe(600);
    expect(r.offered).toBe(600); // every user talked to the business and was asked once
    expect(r.served + r.undelivered).toBe(600);
    expect(r.undelivered).toBeGreaterThan(30);
    expect(r.undelivered).toBeLessThan(100);
    expect(r.byWebhook).toBeGreaterThan(100); // Messenger, Instagram and WhatsApp: 3 channels of 5
    expect(r.byWebhook).toBeLessThan(r.served);
    // The contextual campaign is offered to some of the 30% who mention its keyword.
    expect(r.campaigns[0]).toMatchObject({ targeting: 'contextual' });
    expect(r.campaigns[0].offered).toBeGreaterThan(0);
    expect(r.campaigns.map((c) => c.true_click_rate)).toEqual(trueRates(3));
    const clicks = r.campaigns.reduce((a, c) => a + c.clicks, 0);
    const orders = r.campaigns.reduce((a, c) => a + c.orders, 0);
    expect(clicks).toBeGreaterThan(5);
    expect(formatAdServerSummary(r)).toContain('600 offered');

    const db = running.store.database;
    const stored = async () => {
      const rs = await running.store.client.query({
        query: `SELECT type, campaign_id, count() AS n FROM ${db}.events FINAL
WHERE business_id = {b:String} AND type IN ('sponsored.served', 'sponsored.clicked', 'order.placed')
GROUP BY type, campaign_id`,
        query_params: { b: r.business_id },
        format: 'JSONEachRow',
      });
      return rs.json<{ type: string; campaign_id: string; n: string }>();
    };
    const want = r.served + clicks + orders;
    const end = Date.now() + 20_000;
    let rows = await stored();
    while (rows.reduce((a, x) => a + Number(x.n), 0) < want && Date.now() < end) {
      await new Promise((ok) => setTimeout(ok, 100));
      rows = await stored();
    }
    for (const c of r.campaigns) {
      const n = (type: string) =>
        Number(rows.find((x) => x.type === type && x.campaign_id === c.campaign_id)?.n ?? 0);
      expect(n('sponsored.served'), c.name).toBe(c.served);
      expect(n('sponsored.clicked'), c.name).toBe(c.clicks);
    }
    expect(Number(rows.find((x) => x.type === 'order.placed')?.n ?? 0)).toBe(orders);
  });

  it('parses its own options and leaves the rest', () => {
    expect(splitAdServerArgs(['--adserver', '--decisions', '50', '--campaigns=3', '--users', '9'])).toEqual({
      rest: ['--users', '9'],
      decisions: 50,
      campaigns: 3,
    });
    expect(() => splitAdServerArgs(['--decisions', 'x'])).toThrow(
      /--decisions must be a positive whole number/,
    );
  });
});
