import { type LogEntry, logLevel } from 'kafkajs';
import type { Logger } from '../log.ts';

// kafkajs logs go through pino, so every component's logs share one shape and one redaction.

// Known and intended: Parley bounds each publish by a timeout and answers a retriable error
// instead, so kafkajs's warning about limited producer retries is not news to the operator.
// Pausing and resuming a partition is how the bus backs off, and it logs that itself.
const DOWNGRADED = new Set([
  'Limiting retries for the idempotent producer may invalidate EoS guarantees',
  'Pausing fetching from 1 topics',
  'Resuming fetching from 1 topics',
]);
// Failed requests and connection attempts are retried by kafkajs; whoever finally gives up
// logs the outcome, so each attempt is only a warning.
const RETRIED = new Set(['Connection', 'BrokerPool']);

/** The kafkajs log level matching a pino level, so kafkajs does not build entries pino drops. */
export function kafkaLevel(pinoLevel: string): logLevel {
  switch (pinoLevel) {
    case 'trace':
    case 'debug':
      return logLevel.DEBUG;
    case 'info':
      return logLevel.INFO;
    case 'warn':
      return logLevel.WARN;
    case 'silent':
      return logLevel.NOTHING;
    default:
      return logLevel.ERROR;
  }
}

export function kafkaLogCreator(logger: Logger) {
  const log = logger.child({ component: 'kafkajs' });
  return (_level: logLevel) =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, ...fields } = entry;
      const f = { namespace, ...fields };
      if (DOWNGRADED.has(message)) return log.debug(f, message);
      if (level === logLevel.ERROR && RETRIED.has(namespace)) log.warn(f, message);
      else if (level === logLevel.ERROR) log.error(f, message);
      else if (level === logLevel.WARN) log.warn(f, message);
      else if (level === logLevel.INFO) log.info(f, message);
      else log.debug(f, message);
    };
}
