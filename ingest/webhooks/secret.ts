// The deployment secret that keys the hashes of WhatsApp numbers (core/events/privacy.ts keyedId).
// PARLEY_HASH_SECRET when set. Otherwise, on one machine (embedded log), a random secret is made
// at first start and kept in the data directory (mode 0600), so user ids stay stable across
// restarts. Several ingest processes (Kafka) must share one secret: there, without
// PARLEY_HASH_SECRET, WhatsApp webhooks stay off rather than hash the same number differently.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../core/config.ts';

export const HASH_SECRET_FILE = 'hash-secret';

export async function resolveHashSecret(
  config: Pick<Config, 'hashSecret' | 'kafka' | 'dataDir'>,
): Promise<string | undefined> {
  if (config.hashSecret) return config.hashSecret;
  if (config.kafka) return undefined;
  const path = join(config.dataDir, HASH_SECRET_FILE);
  const existing = await readFile(path, 'utf8').then(
    (s) => s.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    },
  );
  if (existing) return existing;
  await mkdir(config.dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  try {
    await writeFile(path, `${secret}\n`, { flag: 'wx', mode: 0o600 });
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim();
    throw err;
  }
}
