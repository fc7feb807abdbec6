import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PARAM_LENGTH } from '../core/http/fastify.ts';
import { testApp } from './helpers/app.ts';

// The OpenAPI document (built from the route schemas) describes every answer, shows an example of
// every request body, and lists the CSV and Arrow media types where a route serves them.

type Example = { example?: unknown; examples?: unknown };
type Schema = Record<string, unknown> & {
  $ref?: string;
  pattern?: string;
  format?: string;
  maxLength?: number;
};
type Op = {
  parameters?: {
    in: string;
    name: string;
    required?: boolean;
    schema: Schema;
    example?: unknown;
    examples?: Record<string, { value: unknown }>;
  }[];
  requestBody?: { content: Record<string, Example & { schema?: Schema }> };
  responses: Record<string, { description: string; content?: Record<string, unknown> }>;
};
let t: Awaited<ReturnType<typeof testApp>>;
let ops: [string, Op][];
let components: Record<string, Example & Schema>;
let doc: { openapi: string };

beforeAll(async () => {
  t = await testApp();
  const served = (await t.app.inject({ url: '/openapi.json' })).json() as {
    openapi: string;
    paths: Record<string, Record<string, Op>>;
    components: { schemas: Record<string, Example & Schema> };
  };
  doc = served;
  components = served.components.schemas;
  ops = Object.entries(served.paths).flatMap(([path, byMethod]) =>
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

  it('says what the API checks, in OpenAPI 3.1 (patterns of keys, tuples, recursion)', () => {
    expect(doc.openapi).toBe('3.1.0');
    const op = (name: string) => ops.find(([n]) => n === name)?.[1] as Op;
    const param = (name: string, p: string) =>
      op(name).parameters?.find((x) => x.name === p)?.schema as Schema;
    // Range bounds: a time with a zone or a plain date, as the route reads them.
    const forms = param('GET /v1/reports/campaigns', 'from').anyOf as { format: string; pattern: string }[];
    expect(forms.map((f) => f.format)).toEqual(['date', 'date-time']);
    const time = (s: string) => forms.some((f) => new RegExp(f.pattern).test(s));
    for (const ok of ['2026-11-20', '2026-11-20T00:00:00Z', '2026-11-20T01:00:00.5+01:00'])
      expect(time(ok)).toBe(true);
    for (const bad of ['2026-11-20 11:00:00.000', '2026-11-20T00:00:00', '2026-02-30', ''])
      expect(time(bad), bad).toBe(false);
    // Cursors and offer tokens: the form of what the API writes.
    expect(param('GET /v1/events', 'cursor').pattern).toBe('^[A-Za-z0-9_-]+$');
    expect(param('GET /v1/impressions/{token}', 'token').pattern).toMatch(/^\^o1/);
    // Filters: field names the rule language takes.
    expect(components.WhereInput.propertyNames).toMatchObject({ pattern: expect.stringContaining('props') });
    // Segment rules: the recursive grammar, not an opaque value.
    expect(JSON.stringify(components.SegmentRuleInput)).toContain(
      '"$ref":"#/components/schemas/SegmentRuleInput"',
    );
    // Distinct models, as the route checks.
    const models = op('POST /v1/reports/attribution/models').requestBody?.content['application/json'].schema;
    expect(models).toMatchObject({ properties: { models: { uniqueItems: true } } });
    // Events: an array of typed events, or NDJSON.
    const events = op('POST /v1/events').requestBody?.content ?? {};
    expect(Object.keys(events)).toEqual(['application/json', 'application/x-ndjson']);
    expect(events['application/json'].schema).toMatchObject({ type: 'array', minItems: 1, maxItems: 10_000 });
  });

  it('takes every path parameter it documents through the router', () => {
    // The router refuses longer path parameters before any schema sees them.
    const over = ops.flatMap(([name, op]) =>
      (op.parameters ?? [])
        .filter(
          (p) =>
            p.in === 'path' &&
            !(
              p.schema.pattern ||
              p.schema.format ||
              (p.schema.maxLength ?? Number.POSITIVE_INFINITY) <= MAX_PARAM_LENGTH
            ),
        )
        .map((p) => `${name} ${p.name}`),
    );
    expect(over).toEqual([]);
  });

  it('accepts the example of every JSON request body', async () => {
    // A value of the documented form for each path parameter.
    const candidates = ['0123456789abcdef', '00000000-0000-4000-8000-000000000000', 'x'];
    const value = (p: { schema: Schema }) =>
      candidates.find((v) =>
        p.schema.format === 'uuid'
          ? v.includes('-')
          : !p.schema.pattern || new RegExp(p.schema.pattern).test(v),
      ) ?? 'x';
    for (const [name, op] of ops) {
      const media = op.requestBody?.content['application/json'];
      const ref = media?.schema?.$ref?.split('/').at(-1);
      const example =
        media?.example ??
        (media?.examples as unknown[] | undefined)?.[0] ??
        (ref ? components[ref]?.example : undefined);
      if (example === undefined || name.includes('/webhooks/')) continue;
      const [method, path] = name.split(' ');
      const url = path.replace(/\{([^}]+)\}/g, (_, p: string) => {
        const param = op.parameters?.find((x) => x.in === 'path' && x.name === p);
        return param ? value(param) : 'x';
      });
      const res = await t.app.inject({
        method: method as 'POST',
        url,
        headers: { authorization: `Bearer ${t.keys.admin}` },
        payload: example as object,
      });
      // A made-up id may be unknown (404) and a referred segment missing (422): never a 400.
      expect([400, 500].includes(res.statusCode) ? `${name}: ${res.body}` : '', name).toBe('');
    }
  });

  it('accepts the examples of query parameters together', async () => {
    let tried = 0;
    for (const [name, op] of ops) {
      const [method, path] = name.split(' ');
      const query = (op.parameters ?? []).filter((p) => p.in === 'query');
      const example = (p: (typeof query)[number]) => p.example ?? Object.values(p.examples ?? {})[0]?.value;
      const given = query.filter((p) => example(p) !== undefined);
      if (method !== 'GET' || path.includes('{') || given.length === 0) continue;
      if (query.some((p) => p.required && example(p) === undefined)) continue;
      const qs = new URLSearchParams(given.map((p) => [p.name, String(example(p))]));
      const res = await t.app.inject({
        url: `${path}?${qs}`,
        headers: { authorization: `Bearer ${t.keys.admin}` },
      });
      expect(res.statusCode, `${name}?${qs}: ${res.body}`).toBe(200);
      tried++;
    }
    // At least the events listing (range and cursor) and the campaign report (range).
    expect(tried).toBeGreaterThanOrEqual(2);
  });
});
