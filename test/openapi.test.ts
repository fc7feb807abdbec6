import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testApp } from './helpers/app.ts';

// The OpenAPI document (built from the route schemas) describes every answer, shows an example of
// every request body, and lists the CSV and Arrow media types where a route serves them.

type Example = { example?: unknown; examples?: unknown };
type Op = {
  requestBody?: { content: Record<string, Example & { schema?: { $ref?: string } }> };
  responses: Record<string, { description: string; content?: Record<string, unknown> }>;
};
let t: Awaited<ReturnType<typeof testApp>>;
let ops: [string, Op][];
let components: Record<string, Example>;

beforeAll(async () => {
  t = await testApp();
  const doc = (await t.app.inject({ url: '/openapi.json' })).json() as {
    paths: Record<string, Record<string, Op>>;
    components: { schemas: Record<string, Example> };
  };
  components = doc.components.schemas;
  ops = Object.entries(doc.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod).map(([method, op]) => [`${method.toUpperCase()} ${path}`, op] as [string, Op]),
  );
});
afterAll(async () => {
  await t.close();
});

describe('the OpenAPI document', () => {
  it('documents every route of the API', () => {
    expect(ops.length).toBeGreaterThan(25);
  });

  it('gives every answer a real description', () => {
    const defaults = ops.flatMap(([name, op]) =>
      Object.entries(op.responses)
        .filter(([, r]) => !r.description || r.description === 'Default Response')
        .map(([code]) => `${name} ${code}`),
    );
    expect(defaults).toEqual([]);
  });

  it('shows an example of every request body', () => {
    const missing = ops.flatMap(([name, op]) =>
      Object.entries(op.requestBody?.content ?? {})
        .filter(([, media]) => {
          // On the media type, or on the schema it refers to.
          const ref = media.schema?.$ref?.split('/').at(-1);
          const schema = ref ? components[ref] : undefined;
          return [media.example, media.examples, schema?.example, schema?.examples].every(
            (e) => e === undefined,
          );
        })
        .map(([type]) => `${name} ${type}`),
    );
    expect(missing).toEqual([]);
    expect(ops.filter(([, op]) => op.requestBody).length).toBeGreaterThan(8);
    // Signed webhook deliveries, read as raw bytes, are documented in the platform's format too.
    for (const platform of ['messenger', 'instagram', 'whatsapp'])
      expect(
        Object.keys(
          ops.find(([name]) => name === `POST /v1/webhooks/${platform}`)?.[1].requestBody?.content ?? {},
        ),
      ).toEqual(['application/json']);
  });

  it('lists CSV and Arrow beside JSON where a route serves them, and only JSON for errors', () => {
    const tables = [
      'GET /v1/events',
      'POST /v1/reports/funnel',
      'POST /v1/reports/attribution',
      'GET /v1/reports/campaigns',
    ];
    for (const name of tables) {
      const op = ops.find(([n]) => n === name)?.[1];
      expect(Object.keys(op?.responses['200'].content ?? {}), name).toEqual([
        'application/json',
        'text/csv',
        'application/vnd.apache.arrow.stream',
      ]);
      expect(Object.keys(op?.responses['400'].content ?? {}), name).toEqual(['application/json']);
    }
    // Prometheus's text format is for scrapers with a metrics key, not part of the JSON API's document.
    expect(ops.find(([n]) => n === 'GET /metrics')).toBeUndefined();
  });
});
