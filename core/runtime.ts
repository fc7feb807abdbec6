import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createLocalBus } from './bus/local.ts';
import type { Bus } from './bus/types.ts';
import { type Config, topicNames } from './config.ts';
import { ParleyError } from './errors.ts';
import type { Logger } from './log.ts';

/** The bus the config names: Kafka when brokers are configured, the embedded log otherwise. */
export async function createBus(config: Config, logger: Logger): Promise<Bus> {
  if (config.kafka) {
    const { createKafkaBus } = await import('./bus/kafka.ts');
    return createKafkaBus({
      brokers: config.kafka.brokers,
      clientId: config.kafka.clientId,
      logger,
      partitions: config.topics.partitions,
      replication: config.topics.replication,
    });
  }
  return createLocalBus({
    dir: join(config.dataDir, 'log'),
    logger,
    retentionMs: config.localLog.retentionMs,
    retentionBytes: config.localLog.retentionBytes,
  });
}

export function standardTopics(config: Config) {
  const t = topicNames(config);
  return [
    { name: t.events, partitions: config.topics.partitions },
    { name: t.dlq, partitions: 1 },
    { name: t.membership, partitions: config.topics.partitions, compacted: true },
    // Offers are logged for analysis, not consumed in order: one partition is enough, and on the
    // embedded log it bounds the recent records kept in memory to one partition's worth.
    { name: t.offers, partitions: 1 },
  ];
}

/**
 * The embedded engine and log belong to one process. A second process on the same data
 * directory would corrupt both, so it is refused with a message saying which process holds it.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true });
  const path = join(resolve(dataDir), 'parley.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await readFile(path, 'utf8').catch(() => ''));
      if (pid && pid !== process.pid && alive(pid)) {
        throw new ParleyError(
          'PARLEY_ERR_DATA_DIR_LOCKED',
          `The data directory ${dataDir} is in use by process ${pid}; stop it or use another PARLEY_DATA_DIR`,
        );
      }
      await rm(path, { force: true }); // left by a process that died
    }
  }
  throw new ParleyError('PARLEY_ERR_DATA_DIR_LOCKED', `Could not lock ${dataDir}`);
}

function alive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
