import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalBus } from '../../core/bus/local.ts';
import type { Bus } from '../../core/bus/types.ts';
import { EventFeed } from '../../core/events/feed.ts';
import { type Config, parseConfig } from '../../core/config.ts';
import { createAuth } from '../../core/http/auth.ts';
import { createLogger } from '../../core/log.ts';
import { createMetrics } from '../../core/metrics.ts';
import { standardTopics } from '../../core/runtime.ts';
import { type Store, createStore } from '../../core/store/client.ts';
import { migrate } from '../../core/store/migrations.ts';
import { ALL_ROLES, buildApp } from '../../bin/app.ts';

export const newKey = (role: string) => `pk_test_${role}_${randomBytes(12).toString('hex')}`;

/** Keys for every role, plus one analyst limited to business b1. */
export function testKeys(extra: object[] = []) {
  const keys = {
    admin: newKey('admin'),
    ingest: newKey('ingest'),
    analyst: newKey('analyst'),
    marketer: newKey('marketer'),
    adserver: newKey('adserver'),
    analystB1: newKey('analystb1'),
  };
  const list = [
    { key: keys.admin, role: 'admin' },
    { key: keys.ingest, role: 'ingest' },
    { key: keys.analyst, role: 'analyst' },
    { key: keys.marketer, role: 'marketer' },
    { key: keys.adserver, role: 'adserver' },
    { key: keys.analystB1, role: 'analyst', businesses: ['b1'] },
  ];
  return { keys, env: JSON.stringify([...list, ...extra]) };
}

/** A real store and bus on a fresh data directory, and the app built on them (not listening). */
export async function testApp(
  env: Record<string, string> = {},
  opts: { wrapBus?: (bus: Bus) => Bus; extraKeys?: object[] } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'parley-test-'));
  const { keys, env: keyEnv } = testKeys(opts.extraKeys);
  const config: Config = parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_API_KEYS: keyEnv,
    PARLEY_LOG_LEVEL: 'silent',
    ...env,
  });
  const logger = createLogger({ level: 'silent' });
  const store: Store = await createStore(config);
  await migrate(store, logger);
  const realBus = await createLocalBus({ dir: join(dir, 'log'), logger });
  await realBus.ensureTopics(standardTopics(config));
  const bus = opts.wrapBus ? opts.wrapBus(realBus) : realBus;
  const metrics = createMetrics();
  const auth = createAuth({ keys: config.apiKeys, store });
  const feed = new EventFeed(bus);
  const app = await buildApp(config, { logger, metrics, auth, bus, feed, store, roles: ALL_ROLES });
  return {
    app,
    config,
    store,
    bus: realBus,
    /** The app's event feed (over the wrapped bus, when there is one). */
    feed,
    keys,
    dir,
    async close() {
      await app.close();
      await realBus.close();
      await store.close();
    },
  };
}
