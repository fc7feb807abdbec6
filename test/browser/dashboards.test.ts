import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { tableFromIPC } from 'apache-arrow';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUSINESSES,
  KEYS,
  type World,
  newContext,
  seriousA11y,
  signIn,
  startWorld,
  tableFoot,
  tableHead,
  tableText,
} from './harness.ts';

// The dashboards end to end in Chromium, against a running Parley filled by the simulator.
// PARLEY_SCREENSHOTS=1 also writes the screenshots shown in the README (docs/dashboards/).

const SCREENSHOTS = process.env.PARLEY_SCREENSHOTS === '1';
const shot = (name: string) => fileURLToPath(new URL(`../../docs/dashboards/${name}.png`, import.meta.url));
// The machine may be busy (the whole suite runs in parallel): waits are generous.
const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 20_000, interval: 100 });
let w: World;
/** The funnel built in the editor (the screenshots show it). */
let funnelPath = '/funnels';
let segmentPath = '/segments';
let ctx: BrowserContext;
let page: Page;
const PAGES = ['/overview', '/segments', '/campaigns', '/funnels', '/attribution', '/events'];
const DAY = 86_400_000;
const dayStart = (ms: number) => new Date(Math.floor(ms / DAY) * DAY).toISOString();
const daysAgoStart = (n: number) => dayStart(Date.now() - n * DAY);
const tomorrowStart = () => dayStart(Date.now() + DAY);
const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
const money = (n: number, digits = 2) => n.toLocaleString('en-US', { maximumFractionDigits: digits });
type CampaignPerf = {
  campaign_id: string;
  campaign_name: string | null;
  targeting_kind: string;
  served: number;
  clicks: number;
  spend_micros: number;
  conversions: number;
  value_by_currency: Record<string, number>;
  return_on_spend_by_currency: Record<string, number>;
};
const pct = (n: number) => `${(n * 100).toLocaleString('en-US', { maximumFractionDigits: 1 })}%`;

beforeAll(async () => {
  w = await startWorld();
  ctx = await newContext(w);
  page = await signIn(w, ctx, KEYS.both);
}, 240_000);
afterAll(async () => {
  await w?.close();
});

describe('the dashboards in a browser', () => {
  it('signs in with a key, and keeps it out of the page: only an HttpOnly cookie', async () => {
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Overview');
    expect(new URL(page.url()).pathname).toBe('/overview');
    const cookies = await ctx.cookies();
    expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([
      ['parley_session', true, 'Strict'],
    ]);
    const stored = await page.evaluate(
      () => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
    );
    expect(stored).not.toContain(KEYS.both);
    expect(page.url()).not.toContain(KEYS.both);
    expect(await page.evaluate(() => document.cookie)).toBe('');
  });

  it('shows a funnel built in the editor with exactly the API’s numbers', async () => {
    await page.getByRole('link', { name: 'Funnels' }).click();
    await page.locator('select[name=step-2]').selectOption('message.sent');
    await page.locator('select[name=step-3]').selectOption('message.read');
    await page.locator('select[name=step-4]').selectOption('order.placed');
    await page.getByRole('button', { name: 'Last 30 days' }).click();
    const request = await waitForFunnel(page, [
      'message.received',
      'message.sent',
      'message.read',
      'order.placed',
    ]);
    funnelPath = new URL(page.url()).pathname + new URL(page.url()).search;
    const answer = await (await w.api('POST', '/v1/reports/funnel', request)).json();
    const steps = answer.steps as { type: string; users: number }[];
    expect(steps[0].users).toBeGreaterThan(0);
    const rows = await tableText(page, 'funnel-table');
    expect(rows.map((r) => r.slice(0, 5))).toEqual(
      steps.map((s, i) => [
        String(i + 1),
        s.type,
        fmt(s.users),
        pct(s.users / steps[0].users),
        i === 0 ? '—' : pct(s.users / steps[i - 1].users),
      ]),
    );
    // The biggest drop-off is named: the step pair that loses the largest share.
    const losses = steps.slice(1).map((s, i) => 1 - s.users / steps[i].users);
    const k = losses.indexOf(Math.max(...losses));
    await poll(() => page.getByTestId('biggest-drop').textContent()).toContain(
      `step ${k + 1} (${steps[k].type}) → step ${k + 2} (${steps[k + 1].type})`,
    );
  });

  it('exports the funnel as the API’s CSV, and as Arrow, under a descriptive name', async () => {
    const request = JSON.parse((await page.getByTestId('funnel-request').textContent())!);
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV', exact: true }).click(),
    ]);
    expect(csv.suggestedFilename()).toMatch(/^parley-funnel-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv$/);
    const apiCsv = await (await w.api('POST', '/v1/reports/funnel', request, 'text/csv')).text();
    expect(await readFile((await csv.path())!, 'utf8')).toBe(apiCsv);
    const [arrow] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export Arrow' }).first().click(),
    ]);
    expect(arrow.suggestedFilename()).toMatch(/\.arrow$/);
    const table = tableFromIPC(await readFile((await arrow.path())!));
    const apiTable = tableFromIPC(
      new Uint8Array(
        await (
          await w.api('POST', '/v1/reports/funnel', request, 'application/vnd.apache.arrow.stream')
        ).arrayBuffer(),
      ),
    );
    expect(table.numRows).toBe(apiTable.numRows);
    expect([...table.getChild('users')!].map(Number)).toEqual([...apiTable.getChild('users')!].map(Number));
  });

  it('shows the time to convert under the funnel with the API’s histogram, and exports it', async () => {
    const request = JSON.parse((await page.getByTestId('funnel-request').textContent())!);
    expect(request.time_to_convert).toBe(true);
    const answer = await (await w.api('POST', '/v1/reports/funnel', request)).json();
    const ttc = answer.time_to_convert as {
      median_seconds: number | null;
      buckets: { from_seconds: number; to_seconds: number; users: number }[];
    };
    // Every user who reached the last step is in one bucket.
    expect(ttc.buckets.reduce((a, b) => a + b.users, 0)).toBe(answer.steps[answer.steps.length - 1].users);
    expect((await tableText(page, 'ttc-table')).map((r) => r.slice(1))).toEqual(
      ttc.buckets.map((b) => [fmt(b.from_seconds), fmt(b.to_seconds), fmt(b.users)]),
    );
    const median = await page.getByTestId('ttc-median').textContent();
    expect(median).toMatch(ttc.median_seconds === null ? /median —/ : /median \d/);
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV (time to convert)' }).click(),
    ]);
    expect(csv.suggestedFilename()).toMatch(/^parley-funnel-time-to-convert-.*\.csv$/);
    const lines = (await readFile((await csv.path())!, 'utf8')).trim().split('\r\n');
    expect(lines[0]).toBe('bucket,from_seconds,to_seconds,users');
    expect(lines.slice(1).map((l) => l.split(',').slice(-3).map(Number))).toEqual(
      ttc.buckets.map((b) => [b.from_seconds, b.to_seconds, b.users]),
    );
  });

  it('gives the same view at the same URL in a fresh context, and walks back and forward', async () => {
    const shared = page.url();
    const before = await tableText(page, 'funnel-table');
    const other = await newContext(w);
    const p2 = await signIn(w, other, KEYS.analyst, new URL(shared).pathname + new URL(shared).search);
    await poll(() => tableText(p2, 'funnel-table')).toEqual(before);
    expect(p2.url()).toBe(shared);
    await other.close();

    await page.getByRole('button', { name: 'Last 7 days' }).click();
    await poll(() => page.url()).not.toBe(shared);
    await page.goBack();
    await poll(() => page.url()).toBe(shared);
    await poll(() => tableText(page, 'funnel-table')).toEqual(before);
    await page.goForward();
    await poll(() => page.url()).not.toBe(shared);
  });

  it('compares a funnel with the previous period, with the API’s numbers for it', async () => {
    await page.getByLabel('Compare with the previous period').check();
    await poll(() => new URL(page.url()).searchParams.get('compare')).toBe('1');
    const request = JSON.parse((await page.getByTestId('funnel-request').textContent())!);
    const from = Date.parse(request.from);
    const previous = {
      ...request,
      from: new Date(2 * from - Date.parse(request.to)).toISOString(),
      to: request.from,
    };
    const answer = await (await w.api('POST', '/v1/reports/funnel', previous)).json();
    await poll(async () => (await tableText(page, 'funnel-table')).map((r) => r[6])).toEqual(
      answer.steps.map((s: { users: number }) => fmt(s.users)),
    );
    await page.getByLabel('Compare with the previous period').uncheck();
  });

  it('previews a segment rule as it is edited, with the size the API gives, and shows errors by the field', async () => {
    await page.getByRole('link', { name: 'Segments' }).click();
    await page.getByRole('button', { name: 'New segment' }).click();
    const gte = page.locator('input[name=count-gte]').first();
    await gte.fill('2');
    await poll(() => new URL(page.url()).searchParams.get('rule')).toContain('"gte":2');
    const rule = JSON.parse(new URL(page.url()).searchParams.get('rule')!);
    const expected = (await (await w.api('POST', '/v1/segments/preview', { rule })).json()).size;
    await poll(() => page.getByTestId('preview-size').textContent()).toBe(fmt(expected));

    await gte.fill('-1');
    await poll(() => page.locator('.field-error').first().textContent()).toMatch(/0 or more/);

    await gte.fill('2');
    await page.getByLabel('Name').fill('Talked twice in 30 days');
    await page.getByRole('button', { name: 'Save segment' }).click();
    await poll(async () => (await tableText(page, 'segments-table')).map((r) => r[0])).toContain(
      'Talked twice in 30 days',
    );
    // Saved: the page now shows the stored segment, by id.
    await poll(() => new URL(page.url()).searchParams.get('id')).toMatch(/^seg_/);
    segmentPath = new URL(page.url()).pathname + new URL(page.url()).search;
  });

  it('creates a campaign and shows it in the table; pauses it', async () => {
    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('button', { name: 'New campaign' }).click();
    const form = page.locator('form.campaign-form');
    await form.getByLabel('Business').fill(BUSINESSES[1]);
    await form.getByLabel('Name').fill('Winter haircut offer');
    await form.getByLabel('Message text').fill('20% off a haircut this week');
    await form.getByRole('button', { name: 'Save campaign' }).click();
    await poll(async () => (await tableText(page, 'campaigns-table')).map((r) => r[0])).toContain(
      'Winter haircut offer',
    );
    await page.getByRole('button', { name: 'Pause Winter haircut offer' }).click();
    await poll(() => page.getByRole('button', { name: 'Resume Winter haircut offer' }).count()).toBe(1);
    const list = await (await w.api('GET', '/v1/campaigns')).json();
    expect(list.campaigns.find((c: { name: string }) => c.name === 'Winter haircut offer').status).toBe(
      'paused',
    );
  });

  it('shows each campaign’s delivery, targeting, and value and ROAS per currency with the campaigns report’s numbers', async () => {
    expect(new URL(page.url()).pathname).toBe('/campaigns');
    const report = await (
      await w.api(
        'GET',
        `/v1/reports/campaigns?from=${encodeURIComponent(daysAgoStart(29))}&to=${encodeURIComponent(tomorrowStart())}`,
      )
    ).json();
    const perf = report.campaigns as CampaignPerf[];
    expect(perf.filter((c) => c.served > 0).length).toBeGreaterThan(0);
    const currencies = [...new Set(perf.flatMap((c) => Object.keys(c.value_by_currency)))].sort();
    // Orders in EUR, USD and GBP after clicks (the harness): value in several currencies.
    expect(currencies.length).toBeGreaterThan(2);
    const { campaigns } = await (await w.api('GET', '/v1/campaigns')).json();
    const names = new Map((campaigns as { id: string; name: string }[]).map((c) => [c.id, c.name]));
    await poll(async () => (await tableText(page, 'campaigns-table')).length).toBeGreaterThanOrEqual(
      perf.length,
    );
    // A column of value and one of ROAS per currency, never one summed across currencies.
    const head = await tableHead(page, 'campaigns-table');
    expect(head.filter((h) => /^(Value|ROAS)\b/.test(h))).toEqual(
      currencies.flatMap((c) => [`Value ${c}`, `ROAS ${c}`]),
    );
    const col = (label: string) => head.indexOf(label);
    const rows = await tableText(page, 'campaigns-table');
    for (const c of perf) {
      const row = rows.find((r) => r[0] === (names.get(c.campaign_id) ?? c.campaign_name ?? c.campaign_id));
      expect(row, c.campaign_id).toBeDefined();
      expect(
        [col('Targeting'), col('Impressions'), col('Clicks'), col('Conversions')].map((i) => row![i]),
        c.campaign_id,
      ).toEqual([c.targeting_kind, fmt(c.served), fmt(c.clicks), money(c.conversions)]);
      for (const cur of currencies) {
        expect(row![col(`Value ${cur}`)], `${c.campaign_id} ${cur}`).toBe(
          money(c.value_by_currency[cur] ?? 0),
        );
        const roas = c.return_on_spend_by_currency[cur];
        expect(row![col(`ROAS ${cur}`)], `${c.campaign_id} ${cur}`).toBe(
          roas === undefined ? '—' : money(roas),
        );
      }
    }
    // The totals row: value per currency, each over the total spend.
    const foot = await tableFoot(page, 'campaigns-table');
    const spend = perf.reduce((a, c) => a + c.spend_micros, 0) / 1e6;
    expect(foot[col('Impressions')]).toBe(fmt(perf.reduce((a, c) => a + c.served, 0)));
    for (const cur of currencies) {
      const value = perf.reduce((a, c) => a + (c.value_by_currency[cur] ?? 0), 0);
      expect(foot[col(`Value ${cur}`)], cur).toBe(money(value));
      expect(foot[col(`ROAS ${cur}`)], cur).toBe(spend > 0 ? money(value / spend) : '—');
    }
    // The summary by targeting kind, as the report gives it.
    const kinds = await tableText(page, 'campaigns-by-targeting');
    expect(kinds.map((r) => [r[0], r[1], r[2]])).toEqual(
      (report.by_targeting as { targeting_kind: string; campaigns: number; served: number }[]).map((k) => [
        k.targeting_kind,
        fmt(k.campaigns),
        fmt(k.served),
      ]),
    );
    // The export carries the same columns and values as the screen.
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV', exact: true }).click(),
    ]);
    const lines = (await readFile((await csv.path())!, 'utf8')).trim().split('\r\n');
    const header = lines[0].split(',');
    for (const cur of currencies) expect(header).toContain(`value_${cur}`);
    const shownName = (c: CampaignPerf) => names.get(c.campaign_id) ?? c.campaign_name ?? c.campaign_id;
    const first = perf.find((c) => Object.keys(c.value_by_currency).length > 0 && !/[",]/.test(shownName(c)));
    expect(first).toBeDefined();
    if (first) {
      const line = lines.find((l) => l.split(',')[header.indexOf('name')] === shownName(first))!;
      for (const [cur, v] of Object.entries(first.value_by_currency))
        expect(Number(line.split(',')[header.indexOf(`value_${cur}`)])).toBeCloseTo(v, 9);
    }
  });

  it('shows a campaign’s lift with exactly the lift report’s numbers, beside last-touch credit', async () => {
    const id = w.liftCampaigns[w.liftCampaigns.length - 1];
    await page.getByRole('button', { name: `Lift of ${id}` }).click();
    await poll(() => new URL(page.url()).searchParams.get('lift')).toBe(id);
    await poll(() => page.getByTestId('lift').getAttribute('data-request')).toContain(id);
    const request = JSON.parse((await page.getByTestId('lift').getAttribute('data-request'))!);
    expect(request.campaign_id).toBe(id);
    const answer = await (await w.api('POST', '/v1/reports/lift', request)).json();
    const l = answer.campaigns.find((c: { campaign_id: string }) => c.campaign_id === id);
    expect(l.treatment.users).toBeGreaterThan(0);
    expect(l.control.users).toBeGreaterThan(0);
    await page.getByTestId('lift-groups').waitFor();
    const rate = (r: number | null) => (r === null ? '—' : pct(r));
    expect(await tableText(page, 'lift-groups')).toEqual(
      [l.treatment, l.control].map((g, i) => [
        i === 0 ? 'treatment' : 'control (held out)',
        fmt(g.users),
        fmt(g.converted_users),
        fmt(g.conversions),
        rate(g.conversion_rate),
      ]),
    );
    type Iv = { estimate: number; low: number; high: number } | null;
    const iv = (i: Iv, f: (n: number) => string) => [
      i ? f(i.estimate) : '—',
      i ? f(i.low) : '—',
      i ? f(i.high) : '—',
    ];
    const one = (v: number | null, f: (n: number) => string) => [v === null ? '—' : f(v), '—', '—'];
    expect(await tableText(page, 'lift-measures')).toEqual([
      ['absolute lift (rate points)', ...iv(l.absolute_lift, pct)],
      ['relative lift', ...iv(l.relative_lift, pct)],
      ['probability lift > 0', ...one(l.probability_positive, pct)],
      ['incremental conversions', ...iv(l.incremental_conversions, money)],
      [
        'cost per incremental conversion',
        ...one(
          l.cost_per_incremental_conversion_micros === null
            ? null
            : l.cost_per_incremental_conversion_micros / 1e6,
          money,
        ),
      ],
      ['cost', ...one(l.cost_micros / 1e6, money)],
      ['last-touch conversions', ...one(l.last_touch_conversions, money)],
    ]);
    expect(await page.getByTestId('lift-summary').textContent()).toBe(l.summary);
    expect(await page.getByTestId('lift-verdict').textContent()).toMatch(
      new RegExp(
        `^${{ lift: 'Lift', negative: 'Negative', inconclusive: 'Inconclusive', too_small: 'Too small' }[l.verdict as string]}`,
      ),
    );
    // Exports: the measures with the report's unrounded numbers.
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV (measures)' }).click(),
    ]);
    expect(csv.suggestedFilename()).toMatch(new RegExp(`^parley-lift-measures-${id}-.*\\.csv$`));
    const lines = (await readFile((await csv.path())!, 'utf8')).trim().split('\r\n');
    expect(lines[0]).toBe('measure,estimate,low,high');
    const rel = lines.find((x) => x.startsWith('relative lift,'))!.split(',');
    if (l.relative_lift)
      expect(rel.slice(1).map(Number)).toEqual([
        l.relative_lift.estimate,
        l.relative_lift.low,
        l.relative_lift.high,
      ]);
    const [arrow] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('lift').getByRole('button', { name: 'Export Arrow' }).last().click(),
    ]);
    const table = tableFromIPC(await readFile((await arrow.path())!));
    expect([...table.getChild('measure')!]).toEqual(lines.slice(1).map((x) => x.split(',')[0]));
    expect(Number(table.getChild('estimate')!.get(6))).toBe(l.last_touch_conversions);
  });

  it('shows the five attribution models side by side with value per currency, and the unattributed, as the API gives them', async () => {
    await page.getByRole('link', { name: 'Attribution' }).click();
    await page.getByTestId('attribution-table').waitFor();
    const shown = await page.getByTestId('attribution-result').getAttribute('data-request');
    const request = JSON.parse(shown!);
    const models = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based'];
    type Totals = { conversions: number; value_by_currency: Record<string, number> };
    const answers = (await Promise.all(
      models.map(async (model) =>
        (await w.api('POST', '/v1/reports/attribution', { ...request, model })).json(),
      ),
    )) as {
      rows: ({ campaign_id: string; campaign_name: string | null } & Totals)[];
      unattributed: Totals;
    }[];
    const currencies = [
      ...new Set(
        answers.flatMap((a) => [...a.rows, a.unattributed].flatMap((r) => Object.keys(r.value_by_currency))),
      ),
    ].sort();
    // The simulator's orders are in several currencies: they are kept apart.
    expect(currencies.length).toBeGreaterThan(1);
    const head = await tableHead(page, 'attribution-table');
    expect(head).toEqual([
      'Campaign',
      'Campaign id',
      ...models.flatMap((m) => [`${m} conversions`, ...currencies.map((c) => `${m} value ${c}`)]),
    ]);
    const rows = await tableText(page, 'attribution-table');
    const ids = [...new Set(answers.flatMap((a) => a.rows.map((r) => r.campaign_id)))];
    expect(rows.map((r) => r[1]).sort()).toEqual([...ids, '(unattributed)'].sort());
    for (const row of rows) {
      const id = row[1];
      models.forEach((m, i) => {
        const a = answers[i];
        const r = id === '(unattributed)' ? a.unattributed : a.rows.find((x) => x.campaign_id === id);
        const at = head.indexOf(`${m} conversions`);
        expect(row[at], `${id} ${m}`).toBe(money(r?.conversions ?? 0));
        currencies.forEach((cur, k) => {
          expect(row[at + 1 + k], `${id} ${m} ${cur}`).toBe(money(r?.value_by_currency[cur] ?? 0));
        });
        if (r && 'campaign_name' in r && r.campaign_name) expect(row[0]).toBe(r.campaign_name);
      });
    }
  });

  it('does not show campaign editing to an analyst key', async () => {
    const c = await newContext(w);
    const p = await signIn(w, c, KEYS.analyst, '/campaigns');
    await p.getByTestId('campaigns-table').waitFor();
    await p.waitForLoadState('networkidle');
    // The performance report answered (no refusal shown), without the editing controls.
    expect(await p.getByRole('alert').count()).toBe(0);
    expect(await p.getByRole('group', { name: /Dates/ }).count()).toBe(1);
    expect(await p.getByRole('button', { name: 'New campaign' }).count()).toBe(0);
    expect(await p.getByRole('button', { name: /^(Edit|Pause|Resume) / }).count()).toBe(0);
    expect(await p.getByRole('link', { name: 'Segments' }).count()).toBe(0);
    await c.close();
  });

  it('never shows another business’s data to a key limited to one', async () => {
    const c = await newContext(w);
    const p = await signIn(w, c, KEYS.limited, '/events');
    const picker = p.getByLabel('Business');
    expect(await picker.locator('option').allTextContents()).toEqual([BUSINESSES[0]]);
    await poll(async () => (await tableText(p, 'events-table')).length).toBeGreaterThan(1);
    const businesses = new Set((await tableText(p, 'events-table')).map((r) => r[2]));
    expect([...businesses]).toEqual([BUSINESSES[0]]);
    await p.goto(`${w.url}/overview`);
    await p.getByRole('heading', { name: 'Most active businesses' }).waitFor();
    const rows = await p
      .locator('table:has(caption:text("Businesses with the most events")) tbody tr td:first-child')
      .allTextContents();
    expect(rows).toEqual([BUSINESSES[0]]);
    // Asking for another business by URL shows the refusal, not its data.
    await p.goto(`${w.url}/events?business=${BUSINESSES[1]}`);
    await p.getByRole('alert').waitFor();
    expect(await p.getByRole('alert').textContent()).toMatch(/limited to businesses/);
    expect(await tableText(p, 'events-table')).toEqual([]);
    await c.close();
  });

  it('has no serious or critical accessibility violation on any page, light or dark', async () => {
    for (const scheme of ['light', 'dark'] as const) {
      const c = await newContext(w, { colorScheme: scheme });
      const p = await signIn(w, c, KEYS.both);
      for (const path of PAGES) {
        await p.goto(
          `${w.url}${path === '/funnels' ? funnelPath : path === '/segments' ? segmentPath : path}`,
        );
        await p.locator('main table').first().waitFor();
        await p.waitForLoadState('networkidle');
        expect(await seriousA11y(p), `${path} (${scheme})`).toEqual([]);
        if (SCREENSHOTS && (scheme === 'light' || path === '/funnels'))
          await p.screenshot({ path: shot(`${path.slice(1)}${scheme === 'dark' ? '-dark' : ''}`) });
      }
      // The lift view on the campaign page.
      await p.goto(`${w.url}/campaigns?lift=${encodeURIComponent(w.liftCampaigns[1])}`);
      await p.getByTestId('lift-measures').waitFor();
      await p.waitForLoadState('networkidle');
      expect(await seriousA11y(p), `lift (${scheme})`).toEqual([]);
      if (SCREENSHOTS && scheme === 'light') {
        await p.getByTestId('lift').scrollIntoViewIfNeeded();
        await p.screenshot({ path: shot('lift') });
      }
      await c.close();
    }
    const out = await newContext(w);
    const login = await out.newPage();
    await login.goto(`${w.url}/`);
    await login.getByLabel('API key').waitFor();
    expect(await seriousA11y(login), 'login').toEqual([]);
    await out.close();
  });

  it('fits a phone (390×844) without the page scrolling sideways', async () => {
    const c = await newContext(w, { viewport: { width: 390, height: 844 } });
    const p = await signIn(w, c, KEYS.both, funnelPath);
    await p.getByTestId('funnel-table').waitFor();
    expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    if (SCREENSHOTS) await p.screenshot({ path: shot('funnels-phone') });
    await c.close();
  });

  it('signs out: the session is gone', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    const res = await page.evaluate(() => fetch('/v1/session').then((r) => r.status));
    expect(res).toBe(401);
  });

  it('saw no CSP violation and no script error during the whole run', async () => {
    const seen = [...w.cspViolations];
    // The watch itself works: an inline script the CSP refuses is reported.
    const c = await newContext(w);
    const p = await c.newPage();
    await p.goto(`${w.url}/`);
    await p.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.parleyInline = 1';
      document.body.append(s);
    });
    await poll(() => w.cspViolations.length).toBeGreaterThan(seen.length);
    expect(w.cspViolations.slice(seen.length).join('\n')).toMatch(/script-src/);
    expect(await p.evaluate(() => 'parleyInline' in window)).toBe(false);
    await c.close();
    expect(seen).toEqual([]);
  });
});

/** Waits until the page shows the answer to its current request for these steps; returns the request. */
async function waitForFunnel(p: Page, types: string[]) {
  let request: { steps: { type: string }[] } | undefined;
  await poll(async () => {
    request = JSON.parse((await p.getByTestId('funnel-request').textContent()) ?? '{}');
    const shown = await p
      .getByTestId('funnel-result')
      .getAttribute('data-request', { timeout: 500 })
      .catch(() => null);
    const same = shown !== null && JSON.stringify(JSON.parse(shown)) === JSON.stringify(request);
    return same && JSON.stringify(request?.steps.map((s) => s.type));
  }).toBe(JSON.stringify(types));
  return request!;
}
