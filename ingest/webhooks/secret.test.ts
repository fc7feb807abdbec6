import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HASH_SECRET_FILE, resolveHashSecret } from './secret.ts';

describe('hash secret', () => {
  it('uses PARLEY_HASH_SECRET when set', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-secret-'));
    expect(await resolveHashSecret({ hashSecret: 'given', dataDir })).toBe('given');
    await expect(stat(join(dataDir, HASH_SECRET_FILE))).rejects.toThrow();
  });

  it('otherwise makes one at first start, keeps it private in the data directory, and reuses it', async () => {
    const dataDir = join(await mkdtemp(join(tmpdir(), 'parley-secret-')), 'nested');
    const first = await resolveHashSecret({ dataDir });
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await resolveHashSecret({ dataDir })).toBe(first);
    expect((await readFile(join(dataDir, HASH_SECRET_FILE), 'utf8')).trim()).toBe(first);
    expect((await stat(join(dataDir, HASH_SECRET_FILE))).mode & 0o077).toBe(0);
  });

  it('with Kafka (several ingest processes) there is none unless configured', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-secret-'));
    expect(
      await resolveHashSecret({ dataDir, kafka: { brokers: ['k:9092'], clientId: 'p' } }),
    ).toBeUndefined();
  });
});
