import { parseArgs } from 'node:util';
import { ConfigError, parseConfig } from '../core/config.ts';
import { isParleyError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { ALL_ROLES, type Role } from './app.ts';

const HELP = `parley — targeted conversational ads and analytics

Usage:
  parley start [--role ingest|processors|api[,…]]   run Parley (every role by default)
  parley migrate                                     apply pending ClickHouse migrations
  parley simulate [--url URL] [--key KEY] [options]  send realistic conversational traffic
  parley dev-clickhouse [--port 8123] [--host H]    ClickHouse's HTTP interface over the embedded
                                                     engine, for roles run as separate processes (dev only)
  parley help

Configuration comes from PARLEY_* environment variables; see README.md.`;

async function main(argv: string[]) {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'start':
      return start(rest);
    case 'migrate': {
      const config = parseConfig();
      const logger = createLogger({ level: config.logLevel });
      const { createStore } = await import('../core/store/client.ts');
      const { migrate } = await import('../core/store/migrations.ts');
      const { lockDataDir } = await import('../core/runtime.ts');
      const unlock = config.clickhouse.url ? async () => {} : await lockDataDir(config.dataDir);
      const store = await createStore(config);
      const { applied } = await migrate(store, logger);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'nothing to apply');
      await store.close();
      await unlock();
      return;
    }
    case 'simulate': {
      const { simulateCommand } = await import('./simulate.ts');
      return simulateCommand(rest);
    }
    case 'dev-clickhouse':
      return devClickhouse(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return;
    default:
      console.error(`unknown command "${cmd}"\n\n${HELP}`);
      process.exitCode = 2;
  }
}

async function devClickhouse(args: string[]) {
  const { values } = parseArgs({ args, options: { port: { type: 'string' }, host: { type: 'string' } } });
  const port = Number(values.port ?? 8123);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be a port number, not "${values.port}"`);
  const config = parseConfig();
  const logger = createLogger({ level: config.logLevel });
  const { lockDataDir } = await import('../core/runtime.ts');
  const { startDevClickHouse } = await import('../dev/clickhouse/server.ts');
  const { join } = await import('node:path');
  const unlock = await lockDataDir(config.dataDir);
  const { user = 'default', password } = config.devClickhouse ?? {};
  const server = await startDevClickHouse({
    path: join(config.dataDir, 'clickhouse'),
    host: values.host ?? '127.0.0.1',
    port,
    database: config.clickhouse.database,
    auth: password === undefined ? undefined : { user, password },
    logger,
  });
  console.log(
    `dev-clickhouse is listening on ${server.url} (data in ${config.dataDir}; for development only, production uses a ClickHouse server)`,
  );
  const stop = () =>
    server
      .close()
      .then(unlock)
      .then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function start(args: string[]) {
  const { values } = parseArgs({ args, options: { role: { type: 'string' } } });
  const roles = (values.role?.split(',').map((r) => r.trim()) ?? ALL_ROLES) as Role[];
  const bad = roles.filter((r) => !ALL_ROLES.includes(r));
  if (bad.length) throw new Error(`unknown role ${bad.join(', ')}; roles are ${ALL_ROLES.join(', ')}`);
  const config = parseConfig();
  const logger = createLogger({ level: config.logLevel });
  if (roles.includes('api')) (await import('./dashboards.js')).ensureDashboards();
  const { startParley } = await import('./server.ts');
  const running = await startParley(config, { roles, logger });
  console.log(
    `Parley is listening on ${running.url} (roles: ${roles.join(', ')}; docs at ${running.url}/docs)`,
  );
  if (roles.includes('api')) console.log(`Dashboards: ${running.url}/`);
  let signals = 0;
  const shutdown = (sig: string) => {
    if (++signals > 1) {
      logger.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ sig }, 'shutting down: draining');
    running.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError || isParleyError(err) || err instanceof Error) {
    console.error(`parley: ${err.message}`);
  } else console.error(err);
  process.exit(1);
});
