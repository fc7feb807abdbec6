import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ERRORS } from '../errors.ts';

// The OpenAPI document is built from the route schemas (zod). This adds what the schemas alone
// do not say: a description for every answer, and the media types of routes that answer in
// several formats (a route lists them in `produces`; they apply to its 2xx answers only).

export const MEDIA = {
  json: 'application/json',
  csv: 'text/csv',
  arrow: 'application/vnd.apache.arrow.stream',
  text: 'text/plain',
  ndjson: 'application/x-ndjson',
} as const;

/** JSON, CSV and Arrow: what reports and listings answer by the Accept header. */
export const TABLE_FORMATS = [MEDIA.json, MEDIA.csv, MEDIA.arrow];

/** Error answers by status, from the error registry: each code that status can carry, and why. */
const ERROR_DESCRIPTIONS: Record<string, string> = {};
for (const [code, def] of Object.entries(ERRORS)) {
  const s = String(def.status);
  ERROR_DESCRIPTIONS[s] =
    `${ERROR_DESCRIPTIONS[s] ? `${ERROR_DESCRIPTIONS[s]}; ` : ''}${code}: ${def.message}`;
}

type JsonSchema = Record<string, unknown> & { description?: string; type?: string };

const mediaSchema = (type: string, json: JsonSchema): JsonSchema =>
  type === MEDIA.json
    ? json
    : type === MEDIA.arrow
      ? { type: 'string', format: 'binary', description: 'Arrow IPC stream' }
      : { type: 'string', description: type === MEDIA.csv ? 'CSV (RFC 4180, CRLF, a header row)' : 'text' };

const isSchemaByMedia = (v: unknown): v is Record<string, z.ZodType> =>
  typeof v === 'object' && v !== null && Object.values(v).every((s) => s instanceof z.ZodType);

/** `content` per media type, each schema converted as a route's body is. */
function bodyByMedia(input: Parameters<typeof jsonSchemaTransform>[0], bodies: Record<string, z.ZodType>) {
  const content: Record<string, { schema: unknown }> = {};
  for (const [type, body] of Object.entries(bodies))
    content[type] = {
      schema: (jsonSchemaTransform({ ...input, schema: { body } }).schema as { body: unknown }).body,
    };
  return { content };
}

export const openapiTransform: typeof jsonSchemaTransform = (input) => {
  const { documentedBody: documented, ...rest } = input.schema as { documentedBody?: unknown };
  const out = jsonSchemaTransform({ ...input, schema: rest });
  const schema = out.schema as Record<string, unknown>;
  // A body the route reads itself is documented, never validated: a signed webhook's bytes (its
  // platform's format, as JSON Schema), or a zod schema per media type.
  if (documented) schema.body = isSchemaByMedia(documented) ? bodyByMedia(input, documented) : documented;
  // zod leaves a body's examples out of its input JSON schema when the body holds a transform.
  const body = (input.schema as { body?: z.ZodType }).body;
  const meta = body ? z.globalRegistry.get(body) : undefined;
  const examples = meta?.examples ?? (meta?.example === undefined ? undefined : [meta.example]);
  if (examples && schema.body && !(schema.body as JsonSchema).examples)
    schema.body = { ...(schema.body as JsonSchema), examples };
  const produces = schema.produces as string[] | undefined;
  delete schema.produces;
  const original = ((input.schema as { response?: Record<string, { description?: string }> }).response ??
    {}) as Record<string, { description?: string } | undefined>;
  const responses = (schema.response ?? {}) as Record<string, JsonSchema>;
  for (const [code, r] of Object.entries(responses)) {
    if (r.content) continue; // already written per media type by the route
    const status = Number(code);
    const description =
      status >= 400 ? ERROR_DESCRIPTIONS[code] : (r.description ?? original[code]?.description);
    if (r.type === 'null') {
      responses[code] = { ...r, ...(description ? { description } : {}) };
      continue;
    }
    const { description: _, ...body } = r;
    const types = status < 300 && produces ? produces : [MEDIA.json];
    responses[code] = {
      ...(description ? { description } : {}),
      content: Object.fromEntries(types.map((t) => [t, { schema: mediaSchema(t, body) }])),
    };
  }
  return out;
};
