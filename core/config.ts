import { z } from 'zod';
import { DEFAULT_HOLDOUT_KEY } from './campaigns/holdout.ts';

// The one place that reads the environment. Everything else receives a Config.

const roleSchema = z.enum(['ingest', 'marketer', 'adserver', 'analyst', 'metrics', 'admin']);
// A key holds one role (`role`) or several (`roles`); either way it is read as a list.
const apiKeySchema = z
  .strictObject({
    key: z.string().min(16, 'API keys must be at least 16 characters'),
    role: roleSchema.optional(),
    roles: z.array(roleSchema).min(1).optional(),
    businesses: z.array(z.string().min(1)).optional(),
  })
  .refine((k) => (k.role === undefined) !== (k.roles === undefined), 'give either role or roles')
  .transform(({ key, role, roles, businesses }) => ({
    key,
    roles: roles ?? (role ? [role] : []),
    ...(businesses ? { businesses } : {}),
  }));
export type ApiKeyConfig = z.infer<typeof apiKeySchema>;

const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

const jsonList = <T extends z.ZodTypeAny>(item: T) =>
  z.string().transform((s, ctx) => {
    try {
      const parsed = z.array(item).safeParse(JSON.parse(s));
      if (parsed.success) return parsed.data as z.infer<T>[];
      ctx.addIssue({ code: 'custom', message: z.prettifyError(parsed.error) });
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
    }
    return z.NEVER;
  });

// A JSON object of string → string, e.g. {"104512345678901": "biz_barber_42"}.
const jsonStringMap = z.string().transform((s, ctx) => {
  try {
    const parsed = z.record(z.string().min(1), z.string().min(1).max(128)).safeParse(JSON.parse(s));
    if (parsed.success) return parsed.data;
    ctx.addIssue({ code: 'custom', message: z.prettifyError(parsed.error) });
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
  }
  return z.NEVER;
});

// Per-channel sponsored-message policy overrides, e.g. {"sms": {"daily_limit": 1}}.
const channelPolicySchema = z
  .object({
    require_conversation: z.boolean().optional(),
    daily_limit: z.number().int().min(1).nullable().optional(),
  })
  .strict();
const jsonChannelPolicy = z.string().transform((s, ctx) => {
  try {
    const parsed = z
      .partialRecord(z.enum(['messenger', 'whatsapp', 'instagram', 'sms', 'webchat']), channelPolicySchema)
      .safeParse(JSON.parse(s));
    if (parsed.success) return parsed.data;
    ctx.addIssue({ code: 'custom', message: z.prettifyError(parsed.error) });
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
  }
  return z.NEVER;
});

/** What a channel allows: only users already in a conversation; at most N sponsored a day (null: no limit). */
export type ChannelPolicy = { requireConversation: boolean; dailyLimit: number | null };
export const DEFAULT_CHANNEL_POLICY: Record<string, ChannelPolicy> = {
  messenger: { requireConversation: true, dailyLimit: 1 },
  whatsapp: { requireConversation: true, dailyLimit: 1 },
  instagram: { requireConversation: true, dailyLimit: null },
  sms: { requireConversation: true, dailyLimit: null },
  webchat: { requireConversation: true, dailyLimit: null },
};

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

export const configSchema = z.object({
  PARLEY_HOST: z.string().default('127.0.0.1'),
  PARLEY_PORT: int(8080, 0),
  PARLEY_DATA_DIR: z.string().default('./data'),
  PARLEY_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PARLEY_API_KEYS: jsonList(apiKeySchema).optional(),
  PARLEY_CLICKHOUSE_URL: z.url().optional(),
  PARLEY_CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .default('parley'),
  PARLEY_CLICKHOUSE_CLUSTER: z.string().optional(),
  PARLEY_KAFKA_BROKERS: csv.optional(),
  PARLEY_KAFKA_CLIENT_ID: z.string().default('parley'),
  PARLEY_TOPIC_PREFIX: z.string().default(''),
  PARLEY_TOPIC_PARTITIONS: int(4, 1),
  PARLEY_TOPIC_REPLICATION: int(1, 1),
  PARLEY_LOG_RETENTION_HOURS: int(168, 1),
  PARLEY_LOG_RETENTION_BYTES: int(10 * 1024 ** 3, 1024 * 1024),
  PARLEY_BODY_LIMIT_BYTES: int(10 * 1024 * 1024, 1024),
  PARLEY_HTTP_REQUEST_TIMEOUT_SECONDS: int(60, 1),
  PARLEY_MAX_FUTURE_SECONDS: int(300, 0),
  PARLEY_KEYWORDS: csv.default([]),
  PARLEY_HASH_SECRET: z.string().optional(),
  PARLEY_HOLDOUT_KEY: z.string().min(1).default(DEFAULT_HOLDOUT_KEY),
  PARLEY_META_APP_SECRET: z.string().optional(),
  PARLEY_META_VERIFY_TOKEN: z.string().optional(),
  PARLEY_META_BUSINESS_MAP: jsonStringMap.optional(),
  PARLEY_MIN_AUDIENCE_SIZE: int(100, 0),
  // Segments processors in several instances share one consumer group and split the partitions
  // (each announces the changes of its partitions' users); each holds state for every user, so
  // 'off' keeps an instance's memory for other work.
  PARLEY_SEGMENTS_PROCESSOR: z.enum(['on', 'off']).default('on'),
  PARLEY_SINK_BATCH_SIZE: int(20_000, 1),
  PARLEY_SINK_BATCH_WAIT_MS: int(1000, 0),
  PARLEY_DEV_CLICKHOUSE_USER: z.string().default('default'),
  PARLEY_DEV_CLICKHOUSE_PASSWORD: z.string().optional(),
  PARLEY_DECISION_QUIET_SECONDS: int(1800, 0),
  PARLEY_DECISION_HOLD_SECONDS: int(600, 1),
  PARLEY_DECISION_CHANNEL_POLICY: jsonChannelPolicy.optional(),
  PARLEY_CAMPAIGN_REFRESH_MS: int(3000, 100),
  PARLEY_PUBLIC_URL: z.url().optional(),
  PARLEY_RATE_LIMIT_WINDOW_SECONDS: int(60, 1),
  PARLEY_RATE_LIMIT_AUTH_FAILURES: int(30, 0),
  PARLEY_RATE_LIMIT_KEY_REQUESTS: int(600_000, 0),
  PARLEY_METRICS_PORT: z.coerce.number().int().min(0).optional(),
  PARLEY_INGEST_MAX_PENDING_EVENTS: int(100_000, 1),
  PARLEY_CLICKHOUSE_TIMEOUT_MS: int(30_000, 100),
});

export type Config = {
  host: string;
  port: number;
  dataDir: string;
  logLevel: z.infer<typeof configSchema>['PARLEY_LOG_LEVEL'];
  apiKeys?: ApiKeyConfig[];
  clickhouse: { url?: string; database: string; cluster?: string; timeoutMs?: number };
  kafka?: { brokers: string[]; clientId: string };
  topics: { prefix: string; partitions: number; replication: number };
  localLog: { retentionMs: number; retentionBytes: number };
  ingest: { bodyLimitBytes: number; maxFutureMs: number; keywords: string[]; maxPendingEvents: number };
  /** The longest a client may take to send a whole request (headers and body). */
  httpRequestTimeoutMs: number;
  hashSecret?: string;
  /** Keys the treatment/control assignment of campaign holdouts; the same everywhere, never changed mid-campaign. */
  holdoutKey: string;
  meta: { appSecret?: string; verifyToken?: string; businessMap: Record<string, string> };
  segments: { minAudienceSize: number; processor: boolean };
  sink: { batchSize: number; batchWaitMs: number };
  /** `parley dev-clickhouse`: credentials it requires when a password is set. */
  devClickhouse?: { user: string; password?: string };
  decisions: {
    quietPeriodMs: number;
    /** How long an offer is held against caps and budgets, and its token accepted. */
    holdMs: number;
    channelPolicy: Record<string, ChannelPolicy>;
    campaignRefreshMs: number;
    /** Base of click URLs; default: the address the request came to. */
    publicUrl?: string;
  };
  /** Per window: failed authentications per client address, requests per key on ingest and decisions (0: no limit). */
  rateLimit: { windowMs: number; authFailures: number; keyRequests: number };
  /** Serve /metrics without a key on this port of PARLEY_HOST (and not on the main port). */
  metricsPort?: number;
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function parseConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset", as shells and compose files often pass them.
  const clean = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k.startsWith('PARLEY_') && v !== ''),
  );
  const parsed = configSchema.safeParse(clean);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    host: e.PARLEY_HOST,
    port: e.PARLEY_PORT,
    dataDir: e.PARLEY_DATA_DIR,
    logLevel: e.PARLEY_LOG_LEVEL,
    apiKeys: e.PARLEY_API_KEYS,
    clickhouse: {
      url: e.PARLEY_CLICKHOUSE_URL,
      database: e.PARLEY_CLICKHOUSE_DATABASE,
      cluster: e.PARLEY_CLICKHOUSE_CLUSTER,
      timeoutMs: e.PARLEY_CLICKHOUSE_TIMEOUT_MS,
    },
    kafka: e.PARLEY_KAFKA_BROKERS?.length
      ? { brokers: e.PARLEY_KAFKA_BROKERS, clientId: e.PARLEY_KAFKA_CLIENT_ID }
      : undefined,
    topics: {
      prefix: e.PARLEY_TOPIC_PREFIX,
      partitions: e.PARLEY_TOPIC_PARTITIONS,
      replication: e.PARLEY_TOPIC_REPLICATION,
    },
    localLog: {
      retentionMs: e.PARLEY_LOG_RETENTION_HOURS * 3600_000,
      retentionBytes: e.PARLEY_LOG_RETENTION_BYTES,
    },
    httpRequestTimeoutMs: e.PARLEY_HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
    ingest: {
      bodyLimitBytes: e.PARLEY_BODY_LIMIT_BYTES,
      maxFutureMs: e.PARLEY_MAX_FUTURE_SECONDS * 1000,
      keywords: e.PARLEY_KEYWORDS.map((k) => k.toLowerCase()),
      maxPendingEvents: e.PARLEY_INGEST_MAX_PENDING_EVENTS,
    },
    hashSecret: e.PARLEY_HASH_SECRET,
    holdoutKey: e.PARLEY_HOLDOUT_KEY,
    meta: {
      appSecret: e.PARLEY_META_APP_SECRET,
      verifyToken: e.PARLEY_META_VERIFY_TOKEN,
      businessMap: e.PARLEY_META_BUSINESS_MAP ?? {},
    },
    segments: {
      minAudienceSize: e.PARLEY_MIN_AUDIENCE_SIZE,
      processor: e.PARLEY_SEGMENTS_PROCESSOR === 'on',
    },
    sink: { batchSize: e.PARLEY_SINK_BATCH_SIZE, batchWaitMs: e.PARLEY_SINK_BATCH_WAIT_MS },
    devClickhouse: { user: e.PARLEY_DEV_CLICKHOUSE_USER, password: e.PARLEY_DEV_CLICKHOUSE_PASSWORD },
    decisions: {
      quietPeriodMs: e.PARLEY_DECISION_QUIET_SECONDS * 1000,
      holdMs: e.PARLEY_DECISION_HOLD_SECONDS * 1000,
      channelPolicy: Object.fromEntries(
        Object.entries(DEFAULT_CHANNEL_POLICY).map(([ch, def]) => {
          const o = e.PARLEY_DECISION_CHANNEL_POLICY?.[ch as keyof typeof e.PARLEY_DECISION_CHANNEL_POLICY];
          return [
            ch,
            {
              requireConversation: o?.require_conversation ?? def.requireConversation,
              dailyLimit: o?.daily_limit === undefined ? def.dailyLimit : o.daily_limit,
            },
          ];
        }),
      ),
      campaignRefreshMs: e.PARLEY_CAMPAIGN_REFRESH_MS,
      publicUrl: e.PARLEY_PUBLIC_URL,
    },
    rateLimit: {
      windowMs: e.PARLEY_RATE_LIMIT_WINDOW_SECONDS * 1000,
      authFailures: e.PARLEY_RATE_LIMIT_AUTH_FAILURES,
      keyRequests: e.PARLEY_RATE_LIMIT_KEY_REQUESTS,
    },
    metricsPort: e.PARLEY_METRICS_PORT,
  };
}

export function topicNames(config: Pick<Config, 'topics'>) {
  const p = config.topics.prefix;
  return {
    events: `${p}parley.events`,
    dlq: `${p}parley.events.dlq`,
    membership: `${p}parley.membership`,
    offers: `${p}parley.offers`,
  };
}
