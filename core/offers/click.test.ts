import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log.ts';
import { CLICK_SECRET_FILE, clickEventId, clickUrl, resolveClickKey, verifyClick } from './click.ts';

const key = Buffer.alloc(32, 1);
const facts = {
  decision_id: 'd_1',
  campaign_id: 'cmp_1',
  user_id: 'u 1&x',
  business_id: 'b1',
  channel: 'whatsapp',
  thread_id: 't_b1_u1',
  to: 'https://shop.example.com/book?x=1',
};
const query = (url: string) => Object.fromEntries(new URL(url).searchParams);

describe('click URLs', () => {
  it('round-trip their facts and refuse any change', () => {
    const url = clickUrl('https://ads.example.com/', key, facts);
    expect(url.startsWith('https://ads.example.com/v1/decisions/d_1/click?')).toBe(true);
    expect(verifyClick(key, 'd_1', query(url))).toEqual(facts);
    expect(verifyClick(key, 'd_2', query(url))).toBeUndefined();
    expect(verifyClick(key, 'd_1', { ...query(url), to: 'https://evil.example.com' })).toBeUndefined();
    expect(verifyClick(key, 'd_1', { ...query(url), c: 'cmp_2' })).toBeUndefined();
    expect(verifyClick(Buffer.alloc(32, 2), 'd_1', query(url))).toBeUndefined();
    const { s: _s, ...unsigned } = query(url);
    expect(verifyClick(key, 'd_1', unsigned)).toBeUndefined();
  });

  it('give one event id per decision, shaped as a UUID', () => {
    expect(clickEventId('d_1')).toBe(clickEventId('d_1'));
    expect(clickEventId('d_1')).not.toBe(clickEventId('d_2'));
    expect(clickEventId('d_1')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('key from PARLEY_HASH_SECRET, or a secret kept in the data directory on one machine', async () => {
    const logger = createLogger({ level: 'silent' });
    const dir = await mkdtemp(join(tmpdir(), 'parley-click-'));
    try {
      const a = await resolveClickKey({ hashSecret: 's', dataDir: dir }, logger);
      expect(a.equals(await resolveClickKey({ hashSecret: 's', dataDir: dir }, logger))).toBe(true);
      const made = await resolveClickKey({ dataDir: dir }, logger);
      expect((await stat(join(dir, CLICK_SECRET_FILE))).mode & 0o777).toBe(0o600);
      expect(made.equals(await resolveClickKey({ dataDir: dir }, logger))).toBe(true);
      expect(made.equals(a)).toBe(false);
      expect((await readFile(join(dir, CLICK_SECRET_FILE), 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
