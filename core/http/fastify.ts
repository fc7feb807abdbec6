import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  type jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ParleyError, isParleyError } from '../errors.ts';
import { strictObject } from '../input.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { AnswerPaths } from './answer-path.ts';
import type { Auth, Principal, Role } from './auth.ts';
import { WindowLimit } from './limits.ts';
import { openapiTransform } from './openapi.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyInstance {
    parleyLimits: Limits;
    /** The answer path of the busiest routes (answer-path.ts). */
    parleyAnswers: AnswerPaths;
  }
  interface FastifyContextConfig {
    /** The route checks each item of its body on its own ("__proto__" keys included). */
    itemsCheckedAlone?: boolean;
  }
}

/** Limits of failed authentications per client address and of requests per key; absent: no limit. */
type Limits = { authFailures?: WindowLimit; perKey?: WindowLimit };
export type RateLimitOptions = { windowMs: number; authFailures: number; keyRequests: number };

export type App = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  Logger,
  ZodTypeProvider
>;

export const errorBody = z
  .object({ error: z.string(), message: z.string(), details: z.unknown().optional() })
  .meta({ id: 'Error', description: 'Every error answer has this shape' });

/** Decodes a body strictly: invalid UTF-8 is the caller's mistake, not something to guess at. */
export function decodeBody(body: Buffer): string {
  if (!isUtf8(body)) throw new ParleyError('PARLEY_ERR_INVALID_UTF8');
  // A byte order mark is not part of the text.
  const bom = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
  return body.toString('utf8', bom ? 3 : 0);
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ParleyError('PARLEY_ERR_INVALID_JSON', `The body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Refuses a body with a "__proto__" key anywhere: schemas would drop it without a word (zod's
 * records do), so a report filter or rule under that key would be ignored rather than refused.
 * Only a body whose text could hold one (the name, or a \u escape) is walked.
 */
export function refuseProtoKeys(text: string, value: unknown) {
  if (!text.includes('proto') && !text.includes('\\u')) return;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (!Array.isArray(v) && Object.hasOwn(v, '__proto__'))
      throw new ParleyError('PARLEY_ERR_VALIDATION', 'body: the key "__proto__" is not accepted');
    for (const x of Object.values(v)) if (typeof x === 'object' && x !== null) stack.push(x);
  }
}

// The longest path parameter a route takes: an offer token in an impression URL (core/offers/token.ts).
export const MAX_PARAM_LENGTH = 1000;
/** The query of an API route that takes none: no key is allowed. */
const NO_QUERY = strictObject({});
export const ACCEPTED_BODY_TYPES = 'application/json (and application/x-ndjson for POST /v1/events)';

function unsupportedMediaType(type: string | undefined): ParleyError {
  return new ParleyError(
    'PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE',
    `Content-Type ${type ? JSON.stringify(type.slice(0, 100)) : 'is missing'}; send ${ACCEPTED_BODY_TYPES}`,
    { details: { accepted: ['application/json', 'application/x-ndjson'] } },
  );
}

const FASTIFY_CODES: Record<string, ParleyError['code']> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PARLEY_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'PARLEY_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'PARLEY_ERR_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'PARLEY_ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'PARLEY_ERR_INVALID_JSON',
};

/** A Fastify instance with Parley's error shape, strict body parsing, zod schemas and OpenAPI. */
export async function createHttp(opts: {
  logger: Logger;
  bodyLimit: number;
  metrics: Metrics;
  rateLimit?: RateLimitOptions;
  /**
   * The longest a client may take to send a whole request, headers and body (default 60 s). A
   * request still arriving after it is answered 408 and its connection closed, so slow clients
   * cannot hold connections open (Node checks every few seconds).
   */
  requestTimeoutMs?: number;
}): Promise<App> {
  const requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  const instance = randomBytes(6).toString('hex');
  let requests = 0;
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }),
    bodyLimit: opts.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    // Unique across processes by a random prefix, and nothing to compute per request but a counter.
    genReqId: () => `${instance}-${(requests++).toString(36)}`,
    return503OnClosing: true,
    requestTimeout: requestTimeoutMs,
    http: {
      headersTimeout: Math.min(requestTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.min(Math.max(Math.floor(requestTimeoutMs / 4), 250), 5_000),
    },
    // Over-long ids are refused by their schema (400), not by the router (a bare 414).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // What the router refuses itself (a malformed URL) answers in the same shape as everything else.
    frameworkErrors: (err, req, reply) => {
      const path = req.url.split('?')[0];
      const why = /max param length/.test(err.message)
        ? `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`
        : 'it is not valid percent-encoded UTF-8';
      const e = new ParleyError(
        'PARLEY_ERR_BAD_REQUEST',
        `The path ${JSON.stringify(path.length > 120 ? `${path.slice(0, 120)}…` : path)} is not valid: ${why}`,
      );
      (reply as FastifyReply).code(e.statusCode).send(e.toJSON());
    },
    clientErrorHandler,
  }).withTypeProvider<ZodTypeProvider>() as unknown as App;
  // No child logger per request: request logging is off, and the few lines logged per request
  // (5xx) name their request id themselves. On the decision route this is measurable work saved.
  app.setChildLoggerFactory((logger) => logger);
  // Routes that take no query get NO_QUERY: an empty query passes without a parse (most requests
  // to the busiest routes), any key is refused by the schema with its usual message.
  app.setValidatorCompiler((route) => {
    const validate = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    if (route.schema !== NO_QUERY) return validate;
    return (data: unknown) => {
      for (const _ in data as object) return validate(data);
      return { value: data };
    };
  });
  app.setSerializerCompiler(serializerCompiler);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ['application/json', 'application/x-ndjson'],
    { parseAs: 'buffer' },
    (req, body: Buffer, done) => {
      try {
        const text = decodeBody(body);
        // NDJSON is split by the route, so each line can be rejected on its own.
        if (req.headers['content-type']?.includes('ndjson')) return done(null, text);
        const value = parseJson(text);
        if (!req.routeOptions.config.itemsCheckedAlone) refuseProtoKeys(text, value);
        done(null, value);
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );
  // Any other type is refused before a schema could misread it (webhooks register their own parser).
  app.addContentTypeParser('*', (req, _payload, done) =>
    done(unsupportedMediaType(req.headers['content-type']), undefined),
  );

  app.setErrorHandler((err: FastifyError | ParleyError, req, reply) => {
    let e: ParleyError;
    if (isParleyError(err)) e = err;
    else if ((err as FastifyError).validation) {
      e = new ParleyError('PARLEY_ERR_VALIDATION', describeValidation(err as FastifyError), {
        details: (err as FastifyError).validation,
      });
    } else if ((err as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      e = unsupportedMediaType(req.headers['content-type']);
    } else if ((err as FastifyError).code && FASTIFY_CODES[(err as FastifyError).code]) {
      e = new ParleyError(FASTIFY_CODES[(err as FastifyError).code], err.message);
    } else if (((err as FastifyError).statusCode ?? 500) < 500) {
      e = new ParleyError('PARLEY_ERR_BAD_REQUEST', err.message);
    } else {
      e = new ParleyError('PARLEY_ERR_INTERNAL', `Internal error; quote request id ${req.id}`);
    }
    if (e.statusCode >= 500) req.log.error({ err, reqId: req.id, url: req.url }, 'request failed');
    if (e.retriable && e.statusCode === 503) reply.header('retry-after', '1');
    reply.code(e.statusCode).send(e.toJSON());
  });
  // One labelled histogram per route, method and status, looked up once rather than per request
  // (bounded by the routes registered and the statuses they answer). Each route observes its own
  // answers with the route's name at hand (an onResponse hook of that route alone, so no hook runs
  // for every route); answers of no route (404) are observed as unmatched when they finish.
  const byRoute = new Map<string, (method: string, status: number, seconds: number) => void>();
  const histograms = (route: string) => {
    type Histogram = ReturnType<Metrics['httpDuration']['labels']>;
    const byMethod = new Map<string, Map<number, Histogram>>();
    const observeAs = (method: string, status: number, seconds: number) => {
      let byStatus = byMethod.get(method);
      if (!byStatus) {
        byStatus = new Map();
        byMethod.set(method, byStatus);
      }
      let h = byStatus.get(status);
      if (!h) {
        h = opts.metrics.httpDuration.labels(route, method, String(status));
        byStatus.set(status, h);
      }
      h.observe(seconds);
    };
    byRoute.set(route, observeAs);
    const observe = (req: FastifyRequest, reply: FastifyReply) =>
      observeAs(req.method, reply.statusCode, reply.elapsedTime / 1000);
    return Object.assign(
      (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
        observe(req, reply);
        done();
      },
      { observe },
    );
  };
  const unmatched = histograms('unmatched');
  app.setNotFoundHandler((req, reply) => {
    reply.raw.once('finish', () => unmatched.observe(req, reply));
    reply
      .code(404)
      .send(
        new ParleyError('PARLEY_ERR_NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}`).toJSON(),
      );
  });
  app.addHook('onRoute', (route) => {
    // Unknown query keys are refused on every API route, also those that take no query at all.
    if (route.url.startsWith('/v1/') && !route.schema?.querystring)
      route.schema = { ...route.schema, querystring: NO_QUERY };
    route.onResponse = [...[route.onResponse ?? []].flat(), histograms(route.url)];
  });

  const rl = opts.rateLimit;
  const limit = (max: number) => (rl && max > 0 ? new WindowLimit(max, rl.windowMs) : undefined);
  app.decorate('parleyLimits', {
    authFailures: limit(rl?.authFailures ?? 0),
    perKey: limit(rl?.keyRequests ?? 0),
  });
  const answers = new AnswerPaths({
    limits: () => app.parleyLimits,
    observe: (route, method, status, seconds) => byRoute.get(route)?.(method, status, seconds),
  });
  answers.install(app.server);
  app.decorate('parleyAnswers', answers);
  app.addHook('preClose', (done) => {
    answers.close();
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Parley API', version: '1', description: 'Targeted conversational ads and analytics' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: (arg) => documentAnswers(arg, openapiTransform),
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiHooks: {
      onRequest: (_req, reply, done) => {
        reply.header('content-security-policy', DOCS_CSP).header('x-content-type-options', 'nosniff');
        done();
      },
    },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

function describeValidation(err: FastifyError): string {
  // An unknown key usually explains the other issues (a misspelt required key), so it comes first.
  const issues = [...(err.validation ?? [])].sort(
    (a, b) => Number(b.keyword === 'unrecognized_keys') - Number(a.keyword === 'unrecognized_keys'),
  );
  const parts = issues
    .slice(0, 5)
    .map(
      (i) =>
        `${err.validationContext ?? 'body'}${i.instancePath.replace(/\/$/, '').replace(/\//g, '.')}: ${i.message}`,
    );
  return parts.join('; ') || err.message;
}

/**
 * Requests Node's parser refuses before Fastify sees them (request line and headers over 16 KB,
 * malformed HTTP) are answered in Parley's error shape too.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: import('node:net').Socket) {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ParleyError('PARLEY_ERR_HEADERS_TOO_LARGE', 'The request line and headers exceed 16 KB')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ParleyError(
            'PARLEY_ERR_REQUEST_TIMEOUT',
            'The request (its headers and body) was not received in time; send it again',
          )
        : new ParleyError('PARLEY_ERR_BAD_REQUEST', 'The request is not valid HTTP');
  const body = JSON.stringify(e.toJSON());
  const reason = { 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[
    e.statusCode as 408 | 431
  ];
  socket.end(
    `HTTP/1.1 ${e.statusCode} ${reason ?? 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const AUTHENTICATED = Symbol('parley.authenticated');
type TransformArg = Parameters<typeof jsonSchemaTransform>[0] & {
  route?: { onRequest?: unknown; schema?: { hide?: boolean } };
};

/**
 * Documents every answer a route really gives, beside those its schema names: 400 for bad
 * input; 401, 403 and 429 when it needs a key; 503 when the store or bus may be unavailable (all
 * but /healthz and the docs). 204 and 302 answers have no body, and the document says so.
 */
function documentAnswers(arg: TransformArg, transform: typeof jsonSchemaTransform) {
  const schema = arg.schema as { response?: Record<string, unknown>; hide?: boolean } | undefined;
  if (!schema || schema.hide) return transform(arg);
  const hooks = [arg.route?.onRequest].flat() as ({ [AUTHENTICATED]?: boolean } | undefined)[];
  const authenticated = hooks.some((h) => h?.[AUTHENTICATED]);
  const extra: Record<string, unknown> = { 400: errorBody, 408: errorBody, 431: errorBody, 503: errorBody };
  if (authenticated) Object.assign(extra, { 401: errorBody, 403: errorBody, 429: errorBody });
  const response = { ...extra, ...schema.response };
  const out = transform({ ...arg, schema: { ...schema, response } } as typeof arg);
  const doc = out.schema as { response?: Record<string, unknown> };
  for (const code of ['204', '302'])
    if (doc.response?.[code])
      doc.response[code] = { type: 'null', description: code === '204' ? 'No content' : 'Redirect' };
  return out;
}

// The documentation page loads only its own scripts and styles, and no one may frame it.
const DOCS_CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

function rateLimited(reply: FastifyReply, seconds: number) {
  reply.header('retry-after', String(seconds));
  return new ParleyError('PARLEY_ERR_RATE_LIMITED');
}

type Done = (err?: Error) => void;

/**
 * An onRequest (or preHandler) hook that authenticates the request and checks its role before
 * its body is read, so a request that is not allowed costs nothing. Failed authentications are
 * limited per client address. Authenticated answers are never cached and never sniffed. A key
 * seen recently is recognised without a promise (Auth.cached); others are looked up.
 */
export function requireRole(auth: Auth, ...roles: Role[]) {
  const allow = (req: FastifyRequest, p: Principal, done: Done) => {
    try {
      auth.authorize(p, roles);
    } catch (err) {
      done(err as Error);
      return;
    }
    req.principal = p;
    done();
  };
  const hook = (req: FastifyRequest, reply: FastifyReply, done: Done) => {
    reply.header('x-content-type-options', 'nosniff').header('cache-control', 'no-store');
    const failures = req.server.parleyLimits?.authFailures;
    const wait = failures && failures.keys > 0 ? failures.over(req.ip) : 0;
    if (wait) return done(rateLimited(reply, wait));
    // A dashboards session has set the principal already (its key is re-checked there).
    const known = req.principal ?? auth.cached(req.headers.authorization);
    if (known) return allow(req, known, done);
    auth.authenticate(req.headers.authorization).then(
      (p) => allow(req, p, done),
      (err) => {
        const after = failures ? failures.hit(req.ip) : 0;
        done(after ? rateLimited(reply, after) : err);
      },
    );
  };
  return Object.assign(hook, { [AUTHENTICATED]: true });
}

/**
 * The principal requireRole authenticated, typed for the handler. A route without that hook has
 * no principal: a wiring mistake, refused rather than served unauthenticated.
 */
export function principalOf(req: FastifyRequest): Principal {
  if (req.principal) return req.principal;
  throw new ParleyError('PARLEY_ERR_INTERNAL', 'This route has no authentication hook');
}

/** An onRequest hook, after requireRole: limits requests per key (ingest, decisions). */
export function limitPerKey(req: FastifyRequest, reply: FastifyReply, done: Done) {
  const perKey = req.server.parleyLimits?.perKey;
  const wait = perKey ? perKey.hit(req.principal?.keyHash ?? req.ip) : 0;
  done(wait ? rateLimited(reply, wait) : undefined);
}
