import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ParleyProcess, spawnParley, waitFor } from '../helpers/parley-process.ts';
import { kafkaBrokers, unique } from './env.ts';

// Two api processes on a real Kafka broker and one ClickHouse (dev-clickhouse) share one view of
// delivery: a user capped through one is capped on the other within a second, and a budget spent
// through both stops both.

const brokers = kafkaBrokers();
const prefix = `${unique('dec')}.`;
const key = `dec-admin-${randomBytes(12).toString('hex')}`;
let dir: string;
let store: ParleyProcess;
const apis: { p: ParleyProcess; url: string }[] = [];

async function startRole(role: string, name: string, chPort: number) {
  const p = spawnParley(name, ['start', '--role', role], {
    PARLEY_PORT: '0',
    PARLEY_DATA_DIR: join(dir, name),
    PARLEY_KAFKA_BROKERS: brokers.join(','),
    PARLEY_CLICKHOUSE_URL: `http://127.0.0.1:${chPort}/parley`,
    PARLEY_API_KEYS: JSON.stringify([{ key, role: 'admin' }]),
    PARLEY_TOPIC_PREFIX: prefix,
    PARLEY_TOPIC_PARTITIONS: '2',
    PARLEY_HASH_SECRET: 'shared-secret-for-click-urls',
    PARLEY_CAMPAIGN_REFRESH_MS: '200',
    PARLEY_DECISION_QUIET_SECONDS: '0',
  });
  return { p, url: await p.waitForOutput(/Parley is listening on (http:\S+)/) };
}

async function call(url: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const ask = (url: string, user: string, explain = false) =>
  call(url, '/v1/decisions', { user_id: user, business_id: 'b1', channel: 'webchat', explain });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-decisions-kafka-'));
  store = spawnParley('dev-clickhouse', ['dev-clickhouse', '--port', '0'], {
    PARLEY_DATA_DIR: join(dir, 'store'),
  });
  const chPort = Number(new URL(await store.waitForOutput(/dev-clickhouse is listening on (http:\S+)/)).port);
  // The first migrates and creates the topics; the second finds them in place.
  apis.push(await startRole('api,ingest', 'api-1', chPort));
  apis.push(await startRole('api', 'api-2', chPort));
});

afterAll(async () => {
  for (const a of apis) await a.p.stop();
  await store?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Polls until the answer for this user names `reason` ('chosen' when served); returns when. */
async function until(url: string, user: string, reason: string, ms = 45_000) {
  let last: unknown;
  try {
    return await waitFor(
      `${url}: ${user} → ${reason}`,
      async () => {
        const r = await ask(url, user, true);
        last = { status: r.status, candidates: r.body?.candidates };
        const got = r.body?.candidates?.[0]?.reason;
        return r.status === 200 && got === reason ? { at: Date.now(), r } : false;
      },
      ms,
      10,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last answer ${JSON.stringify(last)}`);
  }
}

describe('decisions on Kafka with two api processes', () => {
  it('shares frequency caps and budgets between the processes within a second', async () => {
    const [a, b] = apis.map((x) => x.url);
    for (const url of [a, b])
      await waitFor(
        `${url} ready`,
        async () => (await call(url, '/v1/decisions/ready')).status === 200,
        30_000,
      );
    const now = Date.now();
    const events = ['u1', 'u2', 'u3'].map((u) => ({
      event_id: `${prefix}${u}`,
      type: 'message.received',
      occurred_at: new Date(now - 60_000).toISOString(),
      business_id: 'b1',
      user_id: u,
      channel: 'webchat',
      props: { text_length: 3 },
    }));
    expect((await call(a, '/v1/events', events)).status).toBe(202);
    const created = await call(a, '/v1/campaigns', {
      business_id: 'b1',
      name: 'two processes',
      status: 'active',
      creative: { text: 'hello' },
      schedule: { start: new Date(now - 3600_000).toISOString() },
      budget: { total_micros: 2000 }, // two impressions at 1000
      bid: { cpm_micros: 1_000_000 },
      frequency_cap: { max: 1, per_seconds: 3600 },
      pacing: 'asap',
    });
    expect(created.status).toBe(201);
    const campaignId = created.body.id;

    // u1 is served through b; a second later a refuses u1: capped.
    const served1 = await until(b, 'u1', 'chosen');
    expect(served1.r.body.campaign_id).toBe(campaignId);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await ask(a, 'u1', true)).body.candidates[0].reason).toBe('frequency_cap');

    // u2 through a spends the rest of the budget; a second later b refuses u3.
    await until(a, 'u2', 'chosen');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await ask(b, 'u3', true)).body.candidates[0].reason).toBe('total_budget_exhausted');
    // Neither process serves anything more.
    for (const url of [a, b]) expect((await ask(url, 'u3')).status).toBe(204);
  }, 180_000);
});
