// One registry of coded errors. HTTP answers use { error: code, message, details? }.

type Def = { status: number; retriable: boolean; message: string };

export const ERRORS = {
  PARLEY_ERR_BAD_REQUEST: { status: 400, retriable: false, message: 'The request is not valid' },
  PARLEY_ERR_INVALID_JSON: { status: 400, retriable: false, message: 'The body is not valid JSON' },
  PARLEY_ERR_INVALID_UTF8: { status: 400, retriable: false, message: 'The body is not valid UTF-8' },
  PARLEY_ERR_VALIDATION: { status: 400, retriable: false, message: 'The request does not match the schema' },
  PARLEY_ERR_UNAUTHORIZED: { status: 401, retriable: false, message: 'Missing or unknown API key' },
  PARLEY_ERR_FORBIDDEN: { status: 403, retriable: false, message: 'This API key may not do that' },
  PARLEY_ERR_NOT_FOUND: { status: 404, retriable: false, message: 'Not found' },
  PARLEY_ERR_CONFLICT: { status: 409, retriable: false, message: 'Conflict' },
  PARLEY_ERR_PAYLOAD_TOO_LARGE: { status: 413, retriable: false, message: 'The body is too large' },
  PARLEY_ERR_REQUEST_TIMEOUT: {
    status: 408,
    retriable: true,
    message: 'The request was not received in time',
  },
  PARLEY_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    retriable: false,
    message: 'The request line and headers are too large',
  },
  PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, retriable: false, message: 'Unsupported content type' },
  PARLEY_ERR_NOT_ACCEPTABLE: { status: 406, retriable: false, message: 'Unsupported Accept type' },
  PARLEY_ERR_UNPROCESSABLE: { status: 422, retriable: false, message: 'The request cannot be carried out' },
  PARLEY_ERR_RATE_LIMITED: {
    status: 429,
    retriable: true,
    message: 'Too many requests; retry after Retry-After seconds',
  },
  PARLEY_ERR_BUS_UNAVAILABLE: {
    status: 503,
    retriable: true,
    message: 'The event bus cannot take events now; nothing was acknowledged, retry',
  },
  PARLEY_ERR_STORE_UNAVAILABLE: {
    status: 503,
    retriable: true,
    message: 'The store cannot be reached now; retry',
  },
  PARLEY_ERR_WEBHOOK_NOT_CONFIGURED: {
    status: 503,
    retriable: false,
    message: 'Platform webhooks are not configured on this server',
  },
  PARLEY_ERR_NOT_CONFIGURED: {
    status: 503,
    retriable: false,
    message: 'This server is not configured for that',
  },
  PARLEY_ERR_NOT_READY: {
    status: 503,
    retriable: true,
    message: 'The decision engine is still catching up from the bus; retry',
  },
  PARLEY_ERR_DASHBOARDS_NOT_BUILT: {
    status: 503,
    retriable: false,
    message: 'The dashboards are not built: run `npm run build:dashboards`',
  },
  PARLEY_ERR_INTERNAL: { status: 500, retriable: true, message: 'Internal error' },
  PARLEY_ERR_MIGRATION_CHANGED: {
    status: 500,
    retriable: false,
    message: 'An applied migration file has changed',
  },
  PARLEY_ERR_DATA_DIR_LOCKED: {
    status: 500,
    retriable: false,
    message: 'The data directory is in use by another process',
  },
} as const satisfies Record<string, Def>;

export type ErrorCode = keyof typeof ERRORS;

export class ParleyError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly retriable: boolean;
  readonly details?: unknown;

  constructor(code: ErrorCode, message?: string, opts: { details?: unknown; cause?: unknown } = {}) {
    super(message ?? ERRORS[code].message, { cause: opts.cause });
    this.name = 'ParleyError';
    this.code = code;
    this.statusCode = ERRORS[code].status;
    this.retriable = ERRORS[code].retriable;
    this.details = opts.details;
  }

  toJSON() {
    return {
      error: this.code,
      message: this.message,
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

export const isParleyError = (e: unknown): e is ParleyError => e instanceof ParleyError;
