import { isUtf8 } from 'node:buffer';
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
import type { Auth, Principal, Role } from './auth.ts';
import { openapiTransform } from './openapi.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

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

const MAX_PARAM_LENGTH = 200;
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
}): Promise<App> {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }),
    bodyLimit: opts.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    return503OnClosing: true,
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
  }).withTypeProvider<ZodTypeProvider>() as unknown as App;
  // No child logger per request: request logging is off, and the few lines logged per request
  // (5xx) name their request id themselves. On the decision route this is measurable work saved.
  app.setChildLoggerFactory((logger) => logger);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ['application/json', 'application/x-ndjson'],
    { parseAs: 'buffer' },
    (req, body: Buffer, done) => {
      try {
        const text = decodeBody(body);
        // NDJSON is split by the route, so each line can be rejected on its own.
        done(null, req.headers['content-type']?.includes('ndjson') ? text : parseJson(text));
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
    } else if ((err as FastifyError).statusCode && (err as FastifyError).statusCode! < 500) {
      e = new ParleyError('PARLEY_ERR_BAD_REQUEST', err.message);
    } else {
      e = new ParleyError('PARLEY_ERR_INTERNAL', `Internal error; quote request id ${req.id}`);
    }
    if (e.statusCode >= 500) req.log.error({ err, reqId: req.id, url: req.url }, 'request failed');
    if (e.retriable && e.statusCode === 503) reply.header('retry-after', '1');
    reply.code(e.statusCode).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .code(404)
      .send(
        new ParleyError('PARLEY_ERR_NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}`).toJSON(),
      );
  });

  // Unknown query keys are refused on every API route, also those that take no query at all.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/v1/') && !route.schema?.querystring)
      route.schema = { ...route.schema, querystring: strictObject({}) };
  });

  // One labelled histogram per route, method and status, looked up once rather than per request
  // (bounded by the routes registered and the statuses they answer).
  const durations = new Map<string, ReturnType<Metrics['httpDuration']['labels']>>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const key = `${route}\u0000${req.method}\u0000${reply.statusCode}`;
    let h = durations.get(key);
    if (!h) {
      h = opts.metrics.httpDuration.labels(route, req.method, String(reply.statusCode));
      durations.set(key, h);
    }
    h.observe(reply.elapsedTime / 1000);
    done();
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Parley API', version: '1', description: 'Targeted conversational ads and analytics' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: openapiTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
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

/** A preHandler that authenticates the request (or takes its session's key) and checks its role. */
export function requireRole(auth: Auth, ...roles: Role[]) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    const p = req.principal ?? (await auth.authenticate(req.headers.authorization));
    auth.authorize(p, roles);
    req.principal = p;
  };
}
