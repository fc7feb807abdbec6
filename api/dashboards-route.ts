import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyReply } from 'fastify';
import { ParleyError } from '../core/errors.ts';
import type { App } from '../core/http/fastify.ts';

// The dashboards (docs/dashboards.md): the built app in dashboards/dist, served at / on the API's
// port. Each page is a path of its own that answers the same index.html; the app reads the path.

export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const PAGES = ['/', '/overview', '/segments', '/campaigns', '/funnels', '/attribution', '/events'];

const secure = (reply: FastifyReply) =>
  reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer');

export async function dashboardsRoute(app: App, deps: { dist: string }) {
  const index = join(deps.dist, 'index.html');
  const html = existsSync(index) ? readFileSync(index) : undefined;

  await app.register(async (scope) => {
    scope.addHook('onSend', async (_req, reply, payload) => {
      secure(reply);
      return payload;
    });
    if (existsSync(join(deps.dist, 'assets')))
      await scope.register(fastifyStatic, {
        root: join(deps.dist, 'assets'),
        prefix: '/assets/',
        index: false,
        // File names carry a hash of their content: they never change.
        immutable: true,
        maxAge: '365d',
      });
    for (const page of PAGES)
      scope.get(page, { schema: { hide: true } }, async (_req, reply) => {
        if (!html) throw new ParleyError('PARLEY_ERR_DASHBOARDS_NOT_BUILT');
        return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(html);
      });
  });
}
