import { pino, type Logger } from 'pino';

export type { Logger };

// Personal data and secrets never reach the logs, whichever component logs them.
const REDACT = [
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  '*.email',
  '*.phone',
  '*.text',
  '*.key',
  '*.password',
  'config.apiKeys',
  'config.hashSecret',
  'config.holdoutKey',
  'config.meta.appSecret',
  'config.meta.verifyToken',
];

export function createLogger(
  opts: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'parley',
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    // biome-ignore lint/suspicious/noExplicitAny: pino accepts any writable destination
    (opts.destination as any) ?? pino.destination({ fd: 2, sync: false }),
  );
}
