import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { newKey, testApp } from './helpers/app.ts';

// Keys people manage through /v1/keys: a secret shown once and stored only hashed, several
// roles, revocation at once, rotation with an overlap, every change in the audit log. Keys from
// PARLEY_API_KEYS and stored keys are in force together.

let t: Awaited<ReturnType<typeof testApp>>;
beforeAll(async () => {
  t = await testApp();
});
afterAll(() => t?.close());

const call = (method: string, url: string, key: string | undefined, payload?: unknown) =>
  t.app.inject({
    method: method as 'GET',
    url,
    payload: payload as object,
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });

async function scanTable(table: string) {
  const rs = await t.store.client.query({
    query: `SELECT * FROM ${t.store.database}.${table}`,
    format: 'JSONEachRow',
  });
  return JSON.stringify(await rs.json());
}

describe('keys API', () => {
  it('makes a key with several roles, shows its secret once and stores only its hash', async () => {
    const made = await call('POST', '/v1/keys', t.keys.admin, {
      name: 'reporting pipeline',
      roles: ['ingest', 'analyst'],
      businesses: ['b1'],
    });
    expect(made.statusCode).toBe(201);
    const { key, id, roles } = made.json();
    expect(key).toMatch(/^pk_/);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(roles).toEqual(['ingest', 'analyst']);

    expect((await call('GET', '/v1/events?business_id=b1', key)).statusCode).toBe(200);
    expect((await call('GET', '/v1/events?business_id=b2', key)).statusCode).toBe(403);
    expect((await call('GET', '/v1/segments', key)).statusCode).toBe(403);

    const list = await call('GET', '/v1/keys', t.keys.admin);
    expect(list.body).not.toContain(key);
    const listed = list.json().keys;
    expect(listed.find((k: { id: string }) => k.id === id)).toMatchObject({
      name: 'reporting pipeline',
      source: 'api',
      businesses: ['b1'],
    });
    expect(listed.filter((k: { source: string }) => k.source === 'config')).toHaveLength(6);
    expect(await scanTable('api_keys')).not.toContain(key);
    expect(await scanTable('audit_log')).not.toContain(key);
  });

  it('is for admins only, checked before the body', async () => {
    expect((await call('POST', '/v1/keys', t.keys.marketer, { nonsense: 1 })).statusCode).toBe(403);
    expect((await call('GET', '/v1/audit', t.keys.analyst)).statusCode).toBe(403);
    expect((await call('GET', '/v1/keys', undefined)).statusCode).toBe(401);
  });

  it('revokes a key at once', async () => {
    const { key, id } = (
      await call('POST', '/v1/keys', t.keys.admin, { name: 'x', roles: ['analyst'] })
    ).json();
    expect((await call('GET', '/v1/events', key)).statusCode).toBe(200);
    expect((await call('DELETE', `/v1/keys/${id}`, t.keys.admin)).statusCode).toBe(204);
    expect((await call('GET', '/v1/events', key)).statusCode).toBe(401);
    expect((await call('DELETE', `/v1/keys/${id}`, t.keys.admin)).statusCode).toBe(404);
    const listed = (await call('GET', '/v1/keys', t.keys.admin)).json().keys;
    expect(listed.map((k: { id: string }) => k.id)).not.toContain(id);
  });

  it('rotates a key: the old secret works for the overlap only', async () => {
    const first = (
      await call('POST', '/v1/keys', t.keys.admin, { name: 'ad server', roles: ['adserver'] })
    ).json();
    const kept = await call('POST', `/v1/keys/${first.id}/rotate`, t.keys.admin, { overlap_seconds: 3600 });
    expect(kept.statusCode).toBe(201);
    const second = kept.json();
    expect(second.key).not.toBe(first.key);
    expect(second.replaces.id).toBe(first.id);
    expect(Date.parse(second.replaces.expires_at)).toBeGreaterThan(Date.now() + 3500_000);
    for (const k of [first.key, second.key])
      expect((await call('GET', '/v1/decisions/ready', k)).statusCode).not.toBe(401);

    const cut = await call('POST', `/v1/keys/${second.id}/rotate`, t.keys.admin, { overlap_seconds: 0 });
    expect(cut.statusCode).toBe(201);
    expect((await call('GET', '/v1/decisions/ready', second.key)).statusCode).toBe(401);
    expect((await call('GET', '/v1/decisions/ready', cut.json().key)).statusCode).not.toBe(401);
  });

  it('leaves configured keys to PARLEY_API_KEYS', async () => {
    const cfg = (await call('GET', '/v1/keys', t.keys.admin))
      .json()
      .keys.find(
        (k: { source: string; roles: string[] }) => k.source === 'config' && k.roles[0] === 'ingest',
      );
    const res = await call('DELETE', `/v1/keys/${cfg.id}`, t.keys.admin);
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toMatch(/PARLEY_API_KEYS/);
  });

  it('records who changed what and when in the audit log', async () => {
    const before = new Date().toISOString();
    const { id } = (
      await call('POST', '/v1/keys', t.keys.admin, { name: 'audited', roles: ['metrics'] })
    ).json();
    await call('DELETE', `/v1/keys/${id}`, t.keys.admin);
    const log = await call('GET', '/v1/audit?limit=10', t.keys.admin);
    expect(log.statusCode).toBe(200);
    const adminId = (await call('GET', '/v1/keys', t.keys.admin))
      .json()
      .keys.find(
        (k: { source: string; roles: string[] }) => k.source === 'config' && k.roles[0] === 'admin',
      ).id;
    const mine = log.json().entries.filter((e: { target: string }) => e.target === id);
    expect(mine.map((e: { action: string }) => e.action)).toEqual(['key.revoked', 'key.created']);
    for (const e of mine) {
      expect(e.actor).toBe(adminId);
      expect(Date.parse(e.at)).toBeGreaterThanOrEqual(Date.parse(before));
    }
    const onlyRotations = (await call('GET', '/v1/audit?action=key.rotated', t.keys.admin)).json().entries;
    expect(onlyRotations.length).toBeGreaterThanOrEqual(2);
    expect(onlyRotations.every((e: { action: string }) => e.action === 'key.rotated')).toBe(true);
  });
});

it('at start, says which keys are in force; configured and stored keys work together', async () => {
  const lines: string[] = [];
  const cfgKey = newKey('admin');
  const config = parseConfig({
    PARLEY_DATA_DIR: t.dir,
    PARLEY_PORT: '0',
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_API_KEYS: JSON.stringify([{ key: cfgKey, roles: ['admin'] }]),
  });
  await t.close(); // the data directory is used by one process at a time
  const running = await startParley(config, {
    logger: createLogger({ level: 'silent' }),
    out: (l) => lines.push(l),
  });
  try {
    expect(lines.join('\n')).toMatch(
      /API keys in force: 1 from PARLEY_API_KEYS and \d+ stored .*both are accepted/,
    );
    expect(lines.join('\n')).not.toContain('PARLEY_ADMIN_KEY');
    const made = await fetch(`${running.url}/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cfgKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'stored', roles: ['analyst'] }),
    });
    const { key } = (await made.json()) as { key: string };
    const read = await fetch(`${running.url}/v1/events`, { headers: { authorization: `Bearer ${key}` } });
    expect(read.status).toBe(200);
  } finally {
    await running.stop();
  }
});
