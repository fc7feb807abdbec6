import { isUtf8 } from 'node:buffer';
import { IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Auth, Principal, Role } from './auth.ts';
import type { WindowLimit } from './limits.ts';

// The answer path: the busiest route's ordinary requests answered straight from Node's HTTP
// server, without the per-request machinery of the framework (request and reply objects, hook
// runners, the content-type parser's async scope, the reply's send pipeline). It answers only
// what it can answer exactly as the route would: a JSON body within a few kilobytes, from a key
// authenticated recently, that its check accepts. Everything else — a missing or new key, another
// content type, a chunked or large body, a query string, a body the check does not accept, a
// request over its rate limit, a closing server — goes to Fastify as it came (with the body
// already read, replayed), and is answered there, so every refusal and its wording stay the
// route's own. Checks before the answer have no side effect, so a request handed over is counted
// and limited once.

/** The largest body the answer path reads; a larger one goes to Fastify unread. */
export const ANSWER_PATH_MAX_BODY = 8 * 1024;

export type Answer = { status: 200; json: string } | { status: 204 };

export type AnswerRoute<T> = {
  auth: Auth;
  /** Who may call the route (admin may call any). */
  roles: readonly Role[];
  /**
   * The parsed body as the route's handler takes it when the route's schema would accept it
   * as it is and this principal may send it; undefined for anything else (Fastify then
   * answers). No side effect.
   */
  accept(body: unknown, p: Principal): T | undefined;
  /** The answer; undefined to leave the request to Fastify (before any side effect). */
  answer(body: T, req: IncomingMessage): Answer | undefined;
};

/** What the answer path needs of the app around it. */
export type AnswerPathDeps = {
  limits: () => { authFailures?: WindowLimit; perKey?: WindowLimit };
  /** Records an answer's duration in the route's HTTP metrics. */
  observe: (route: string, method: string, status: number, seconds: number) => void;
};

// The headers every authenticated answer carries (requireRole), then the body's.
const NO_BODY_HEADERS = ['x-content-type-options', 'nosniff', 'cache-control', 'no-store'];
const JSON_TYPE = 'application/json; charset=utf-8';

function jsonType(type: string | undefined) {
  if (type === undefined) return false;
  if (type.length === 16) return type.toLowerCase() === 'application/json';
  const t = type.toLowerCase().replace(/\s+/g, '');
  return t === 'application/json;charset=utf-8' || t === 'application/json;charset="utf-8"';
}

/**
 * The same request again, for Fastify: its method, URL and headers, and the body already read
 * from the connection.
 */
function replayed(req: IncomingMessage, body: Buffer): IncomingMessage {
  const again = new IncomingMessage(req.socket);
  again.method = req.method;
  again.url = req.url;
  again.httpVersion = req.httpVersion;
  again.httpVersionMajor = req.httpVersionMajor;
  again.httpVersionMinor = req.httpVersionMinor;
  again.headers = req.headers;
  again.rawHeaders = req.rawHeaders;
  again.complete = true;
  if (body.length > 0) again.push(body);
  again.push(null);
  return again;
}

export class AnswerPaths {
  private readonly routes = new Map<string, { route: AnswerRoute<unknown>; name: string }>();
  private closing = false;
  /** Requests answered here (the rest went to Fastify). */
  answered = 0;

  constructor(private readonly deps: AnswerPathDeps) {}

  /** Answers POST requests to this exact path (no query) when they qualify. */
  post<T>(path: string, route: AnswerRoute<T>) {
    this.routes.set(path, { route: route as AnswerRoute<unknown>, name: path });
  }

  /** From now on every request goes to Fastify (which answers 503 while closing). */
  close() {
    this.closing = true;
  }

  /**
   * Puts the answer path in front of the server's request handler (Fastify's), which gets
   * every request the answer path does not take.
   */
  install(server: Server) {
    const [handler] = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
    if (!handler) throw new Error('The server has no request handler to put the answer path in front of');
    server.removeListener('request', handler);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.take(req, res, handler)) handler(req, res);
    });
  }

  /** Whether the answer path took the request (it then answers it or hands it over itself). */
  private take(
    req: IncomingMessage,
    res: ServerResponse,
    handler: (req: IncomingMessage, res: ServerResponse) => void,
  ): boolean {
    if (req.method !== 'POST' || this.closing || this.routes.size === 0) return false;
    const entry = this.routes.get(req.url as string);
    if (entry === undefined) return false;
    const h = req.headers;
    const length = h['content-length'];
    if (length === undefined || h['transfer-encoding'] !== undefined || !jsonType(h['content-type']))
      return false;
    const bytes = Number(length);
    if (!(bytes > 0 && bytes <= ANSWER_PATH_MAX_BODY) || h.host === undefined) return false;
    const p = this.principal(req, entry.route);
    if (p === undefined) return false;
    const started = performance.now();
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
    });
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received);
      let done = false;
      try {
        if (received === bytes) done = this.answer(entry, req, res, body, p, started);
      } catch {
        done = false;
      }
      if (!done) handler(replayed(req, body), res);
    });
    return true;
  }

  /** The principal of a recently authenticated key allowed on the route; undefined otherwise. */
  private principal(req: IncomingMessage, route: AnswerRoute<unknown>): Principal | undefined {
    const failures = this.deps.limits().authFailures;
    if (failures && failures.keys > 0 && failures.over(req.socket.remoteAddress ?? '')) return undefined;
    const p = route.auth.cached(req.headers.authorization);
    if (p === undefined) return undefined;
    try {
      route.auth.authorize(p, route.roles);
    } catch {
      return undefined;
    }
    return p;
  }

  private answer(
    entry: { route: AnswerRoute<unknown>; name: string },
    req: IncomingMessage,
    res: ServerResponse,
    bytes: Buffer,
    p: Principal,
    started: number,
  ): boolean {
    // A byte order mark, invalid UTF-8 or invalid JSON: the route's parser says what is wrong.
    if (bytes[0] === 0xef || !isUtf8(bytes)) return false;
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      return false;
    }
    const body = entry.route.accept(value, p);
    if (body === undefined) return false;
    const perKey = this.deps.limits().perKey;
    if (perKey && !perKey.room(p.keyHash)) return false;
    const a = entry.route.answer(body, req);
    if (a === undefined) return false;
    perKey?.hit(p.keyHash);
    if (a.status === 204) {
      res.writeHead(204, NO_BODY_HEADERS);
      res.end();
    } else {
      res.writeHead(200, [
        ...NO_BODY_HEADERS,
        'content-type',
        JSON_TYPE,
        'content-length',
        String(Buffer.byteLength(a.json)),
      ]);
      res.end(a.json);
    }
    this.answered++;
    this.deps.observe(entry.name, 'POST', a.status, (performance.now() - started) / 1000);
    return true;
  }
}
