// The deployment secret that keys the hashes of WhatsApp numbers (core/events/privacy.ts keyedId).
// PARLEY_HASH_SECRET when set. Otherwise, on one machine (embedded log), a random secret is made
// at first start and kept in the data directory (mode 0600), so user ids stay stable across
// restarts. Several ingest processes (Kafka) must share one secret: there, without
// PARLEY_HASH_SECRET, WhatsApp webhooks stay off rather than hash the same number differently.
import type { Config } from '../../core/config.ts';
import { dataDirSecret } from '../../core/secret-file.ts';

export const HASH_SECRET_FILE = 'hash-secret';

export async function resolveHashSecret(
  config: Pick<Config, 'hashSecret' | 'kafka' | 'dataDir'>,
): Promise<string | undefined> {
  if (config.hashSecret) return config.hashSecret;
  if (config.kafka) return undefined;
  return dataDirSecret(config.dataDir, HASH_SECRET_FILE);
}
