import { tableFromIPC } from 'apache-arrow';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEXT_CURSOR_HEADER } from '../api/events-route.ts';
import { csvCell } from '../api/report-formats.ts';
import { normalizeEvent } from '../core/events/normalize.ts';
import { CHANNELS, type CanonicalEvent, EVENT_TYPES } from '../core/events/schema.ts';
import { testApp } from './helpers/app.ts';
import { startSink } from './helpers/sink.ts';

// Everything acknowledged is storable (docs/ingest.md): arbitrary JSON and Unicode thrown at
// POST /v1/events is, event by event, either rejected with its index or stored and read back
// unchanged through GET /v1/events as JSON, CSV and Arrow; nothing answers 5xx.

let t: Awaited<ReturnType<typeof testApp>>;
let stopSink: () => Promise<void>;

beforeAll(async () => {
  t = await testApp();
  stopSink = await startSink(t);
});
afterAll(async () => {
  await stopSink();
  await t.close();
});

/** Any UTF-16 code units, so lone surrogates come up often. */
const utf16 = (maxLength: number) =>
  fc
    .array(
      fc.oneof(
        fc.integer({ min: 0x20, max: 0x7e }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0xd800, max: 0xdfff }),
      ),
      { maxLength },
    )
    .map((codes) => String.fromCharCode(...codes));
const anyString = fc.oneof(
  fc.string({ maxLength: 12 }),
  utf16(12),
  fc.string({ minLength: 120, maxLength: 140 }),
);
const id = fc.oneof(
  { weight: 12, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
  { weight: 2, arbitrary: anyString },
);
const time = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .integer({ min: Date.UTC(2020, 0, 1), max: Date.now() })
      .map((ms) => new Date(ms).toISOString()),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '2026-03-04T10:15:30+05:30',
      '2026-03-04',
      'yesterday',
      '1999-01-01T00:00:00Z',
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue() },
);
const propKey = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/),
  fc.constantFrom('value', 'currency', 'campaign_id', 'text', 'keywords', 'a.b', '', 'ok_key'),
  anyString,
);
const propValue = fc.oneof(
  fc.string({ maxLength: 12 }),
  anyString,
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(anyString, { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
);
const event = fc.record(
  {
    event_id: id,
    type: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...EVENT_TYPES) },
      { weight: 1, arbitrary: fc.jsonValue() },
    ),
    occurred_at: time,
    business_id: id,
    user_id: id,
    thread_id: id,
    channel: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...CHANNELS) },
      { weight: 1, arbitrary: anyString },
    ),
    props: fc.oneof(
      { weight: 6, arbitrary: fc.dictionary(propKey, propValue, { maxKeys: 4 }) },
      { weight: 1, arbitrary: fc.jsonValue() },
    ),
  },
  { requiredKeys: ['event_id', 'type', 'occurred_at', 'business_id', 'user_id', 'channel'] },
);
const item = fc.oneof(
  { weight: 8, arbitrary: event },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const ARROW = 'application/vnd.apache.arrow.stream';

describe('POST /v1/events with arbitrary input', () => {
  it('rejects each event with its index, or stores it readable in JSON, CSV and Arrow; never 5xx', async () => {
    const expected = new Map<string, CanonicalEvent>();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 6 }), async (items) => {
        run++;
        // A unique event_id per item (its arbitrary text kept), so each accepted copy is the first.
        const body = items.map((it, i) =>
          it &&
          typeof it === 'object' &&
          !Array.isArray(it) &&
          typeof (it as { event_id?: unknown }).event_id === 'string'
            ? { ...it, event_id: `${run}.${i}:${(it as { event_id: string }).event_id}` }
            : it,
        );
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/events',
          headers: { ...auth(t.keys.ingest), 'content-type': 'application/json' },
          payload: JSON.stringify(body),
        });
        expect(res.statusCode, res.body).toBe(202);
        const { accepted, rejected } = res.json() as {
          accepted: number;
          rejected: { index: number; error: string }[];
        };
        const refused = new Set(rejected.map((r) => r.index));
        expect(refused.size).toBe(rejected.length);
        for (const r of rejected) expect(r.error.length).toBeGreaterThan(0);
        expect(accepted + refused.size).toBe(items.length);
        body.forEach((e, i) => {
          if (refused.has(i)) return;
          const n = normalizeEvent(e, {
            now: Date.now(),
            maxFutureMs: t.config.ingest.maxFutureMs,
            keywords: t.config.ingest.keywords,
          });
          expect(n.ok, JSON.stringify(e)).toBe(true);
          if (n.ok) expected.set(n.value.event_id, n.value);
        });
      }),
      // Most arbitrary events are refused; 150 requests of 1–6 items leave dozens storable (60
      // left as few as 19 in one run), so the floor below checks the property is not vacuous.
      { numRuns: 150 },
    );
    expect(expected.size).toBeGreaterThan(20); // plenty were storable, too

    // Every acknowledged event is stored.
    const ids = [...expected.keys()];
    const end = Date.now() + 15_000;
    for (;;) {
      const rs = await t.store.client.query({
        query: `SELECT count() AS c FROM ${t.store.database}.events FINAL WHERE event_id IN {ids:Array(String)}`,
        query_params: { ids },
        format: 'JSONEachRow',
      });
      const c = Number((await rs.json<{ c: string }>())[0].c);
      if (c === ids.length) break;
      if (Date.now() > end) throw new Error(`only ${c} of ${ids.length} acknowledged events were stored`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // ...and reads back the same in every format.
    const json = await readAll(undefined);
    const csv = await readAll('text/csv');
    const arrow = await readAll(ARROW);
    for (const [eid, e] of expected) {
      const props = JSON.parse(JSON.stringify(e.props));
      expect(json.get(eid)).toEqual({ ...e, props });
      const row = csv.get(eid) as string[];
      const fields = [e.event_id, e.type, e.occurred_at, e.business_id, e.user_id, e.thread_id, e.channel];
      expect(row.slice(0, 7)).toEqual(fields.map((f, i) => (i === 2 ? f : csvText(f))));
      expect(JSON.parse(row[7].replace(/^'/, ''))).toEqual(props);
      const a = arrow.get(eid) as Record<string, unknown>;
      expect([
        a.event_id,
        a.type,
        new Date(Number(a.occurred_at)).toISOString(),
        a.business_id,
        a.user_id,
        a.thread_id,
        a.channel,
      ]).toEqual(fields);
      expect(JSON.parse(String(a.props))).toEqual(props);
    }
  });
});

/** What a text cell reads as once parsed: the value, with the formula guard if it needed one. */
function csvText(v: string): string {
  const cell = csvCell(v, true);
  return cell.startsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell;
}

/** Every stored event, by event_id, paging through one format. */
async function readAll(accept: string | undefined): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  let cursor: string | null = null;
  do {
    const res: Awaited<ReturnType<typeof t.app.inject>> = await t.app.inject({
      url: `/v1/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
      headers: { ...auth(t.keys.analyst), ...(accept ? { accept } : {}) },
    });
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    if (!accept) {
      const page = res.json() as { events: CanonicalEvent[]; next: string | null };
      for (const e of page.events) out.set(e.event_id, e);
      cursor = page.next;
    } else {
      if (accept === ARROW)
        for (const r of tableFromIPC(new Uint8Array(res.rawPayload)).toArray()) {
          const row = r.toJSON() as Record<string, unknown>;
          out.set(String(row.event_id), row);
        }
      else for (const r of parseCsvRows(res.body)) out.set(r[0], r);
      cursor = (res.headers[NEXT_CURSOR_HEADER] as string | undefined) ?? null;
    }
  } while (cursor);
  return out;
}

/** The data rows of an RFC 4180 body (header dropped); event ids start unneutralised with their run number. */
function parseCsvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') {
        cell += '"';
        i++;
      } else quoted = false;
    } else if (c === '"' && cell === '') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  return rows.slice(1);
}
