import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ParleyError } from '../errors.ts';
import type { Auth } from './auth.ts';
import { type App, errorBody } from './fastify.ts';

// Dashboards sessions (docs/dashboards.md): a person pastes an API key once; the server answers
// with an HttpOnly cookie holding an opaque random id, mapped here to the key's hash. Every
// request looks the key up again, so a revoked or replaced key ends its sessions at once.
// Sessions live in this process's memory: a restart signs everyone out.

declare module 'fastify' {
  interface FastifyRequest {
    sessionExpiresAt?: number;
  }
}

export const SESSION_COOKIE = 'parley_session';
export const SESSION_TTL_MS = 12 * 3600_000;
/** Cookie-authenticated writes must carry this header (a cross-site form cannot set it). */
export const REQUEST_HEADER = 'x-parley-request';
const MAX_SESSIONS = 10_000;

type Session = { keyHash: string; expiresAt: number };

export function createSessions(opts: { ttlMs?: number; now?: () => number } = {}) {
  const ttl = opts.ttlMs ?? SESSION_TTL_MS;
  const now = opts.now ?? Date.now;
  const byId = new Map<string, Session>();
  const prune = () => {
    const t = now();
    for (const [id, s] of byId) if (s.expiresAt <= t) byId.delete(id);
    // Still full: the oldest sessions (Map order is insertion order) make room.
    for (const id of byId.keys()) {
      if (byId.size < MAX_SESSIONS) break;
      byId.delete(id);
    }
  };
  return {
    create(keyHash: string) {
      if (byId.size >= MAX_SESSIONS) prune();
      const id = randomBytes(32).toString('base64url');
      const s = { keyHash, expiresAt: now() + ttl };
      byId.set(id, s);
      return { id, ...s };
    },
    get(id: string): Session | undefined {
      const s = byId.get(id);
      if (s && s.expiresAt <= now()) byId.delete(id);
      return s && s.expiresAt > now() ? s : undefined;
    },
    delete(id: string) {
      byId.delete(id);
    },
  };
}
export type Sessions = ReturnType<typeof createSessions>;

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

const isHttps = (req: FastifyRequest) =>
  req.headers['x-forwarded-proto'] === 'https' || Boolean((req.raw.socket as TLSSocket).encrypted);

/** Refuses a cookie-authenticated write that another site could have sent. */
function checkSameOrigin(req: FastifyRequest) {
  const expected = `${isHttps(req) ? 'https' : 'http'}://${req.headers.host}`;
  if (req.headers.origin !== expected)
    throw new ParleyError(
      'PARLEY_ERR_FORBIDDEN',
      `Signed-in writes must come from this site (Origin ${expected}, not ${req.headers.origin ?? 'missing'})`,
    );
  if (req.headers[REQUEST_HEADER] !== '1')
    throw new ParleyError('PARLEY_ERR_FORBIDDEN', `Signed-in writes need the header ${REQUEST_HEADER}: 1`);
}

function setCookie(req: FastifyRequest, reply: FastifyReply, value: string, maxAgeSeconds: number) {
  const secure = isHttps(req) ? '; Secure' : '';
  reply.header(
    'set-cookie',
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`,
  );
}

const sessionView = z
  .object({
    roles: z.array(z.string()),
    businesses: z.array(z.string()).nullable().describe('null: every business'),
    expires_at: z.string().nullable().describe('null for a bearer key'),
  })
  .meta({ id: 'Session', description: 'Who is signed in: roles, businesses and when the session ends' });

/**
 * Signs people in and out, and lets a valid session cookie stand for the key on /v1 routes.
 * A request with an Authorization header is authenticated by it alone, as before.
 */
export async function sessionRoutes(app: App, deps: { auth: Auth; sessions: Sessions }) {
  const { auth, sessions } = deps;

  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    reply.header('cache-control', 'no-store');
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (req.headers.authorization !== undefined || id === undefined) return;
    const s = sessions.get(id);
    const p = s && (await auth.byHash(s.keyHash));
    if (!p) {
      if (s) sessions.delete(id);
      // Signing in again is the one thing a stale cookie may still do.
      if (req.url === '/v1/session' && req.method !== 'GET') return;
      throw new ParleyError('PARLEY_ERR_UNAUTHORIZED', 'The session has ended; sign in again');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') checkSameOrigin(req);
    req.principal = p;
    req.sessionExpiresAt = s.expiresAt;
  });

  const errors = { 400: errorBody, 401: errorBody, 403: errorBody };
  app.post(
    '/v1/session',
    {
      schema: {
        summary: 'Sign in to the dashboards with an API key; answers with a session cookie',
        tags: ['session'],
        security: [],
        body: z
          .object({ key: z.string().min(1).max(512) })
          .strict()
          .meta({ examples: [{ key: 'pk_analyst_0123456789abcdef' }] }),
        response: { 200: sessionView.describe('Signed in: the session cookie is set'), ...errors },
      },
    },
    async (req, reply) => {
      checkSameOrigin(req);
      const p = await auth.authenticate(`Bearer ${req.body.key}`);
      const old = readCookie(req.headers.cookie, SESSION_COOKIE);
      if (old) sessions.delete(old);
      const s = sessions.create(p.keyHash);
      setCookie(req, reply, s.id, Math.floor(SESSION_TTL_MS / 1000));
      return {
        roles: p.roles,
        businesses: p.businesses ?? null,
        expires_at: new Date(s.expiresAt).toISOString(),
      };
    },
  );

  app.get(
    '/v1/session',
    {
      schema: {
        summary: 'Who is signed in: the roles and businesses of the session’s (or bearer) key',
        tags: ['session'],
        response: { 200: sessionView.describe('The signed-in key’s roles and businesses'), ...errors },
      },
    },
    async (req) => {
      const p = req.principal ?? (await auth.authenticate(req.headers.authorization));
      return {
        roles: p.roles,
        businesses: p.businesses ?? null,
        expires_at: req.sessionExpiresAt ? new Date(req.sessionExpiresAt).toISOString() : null,
      };
    },
  );

  app.delete(
    '/v1/session',
    {
      schema: {
        summary: 'Sign out: ends the session and clears its cookie',
        tags: ['session'],
        security: [],
        response: { 204: z.null().describe('Signed out; the session cookie is cleared'), ...errors },
      },
    },
    async (req, reply) => {
      const id = readCookie(req.headers.cookie, SESSION_COOKIE);
      if (id) sessions.delete(id);
      setCookie(req, reply, '', 0);
      return reply.code(204).send(null);
    },
  );
}
