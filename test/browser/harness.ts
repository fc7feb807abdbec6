import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axe from 'axe-core';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { runAdServer } from '../../bin/sim/adserver.ts';
import { runLift } from '../../bin/sim/lift.ts';
import { runSimulation } from '../../bin/simulate.ts';
import { makeBusinesses } from '../../bin/sim/traffic.ts';
import { type ParleyProcess, freePort, spawnParley, waitFor } from '../helpers/parley-process.ts';

// One Parley (a real `parley start`, embedded defaults, its own data directory and port) filled
// by the simulator, and Debian's Chromium driven by playwright-core, for the whole browser suite.

export const CHROMIUM = '/usr/bin/chromium';
export const SEED = 'dashboards-e2e';
export const BUSINESSES = makeBusinesses({ seed: SEED, businesses: 3 }).map((b) => b.id);
const key = (name: string) => `pk_e2e_${name}_${Math.random().toString(36).slice(2)}0123456789`;

export const KEYS = {
  admin: key('admin'),
  ingest: key('ingest'),
  both: key('both'),
  analyst: key('analyst'),
  limited: key('limited'),
};

export type World = {
  parley: ParleyProcess;
  url: string;
  browser: Browser;
  accepted: number;
  /** The campaigns of the lift scenario (held-out users, known true effects). */
  liftCampaigns: string[];
  /** CSP violations seen by any page of any context. */
  cspViolations: string[];
  api(method: string, path: string, body?: unknown, accept?: string): Promise<Response>;
  close(): Promise<void>;
};

export async function startWorld(): Promise<World> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'parley-dashboards-'));
  const parley = spawnParley('parley', ['start'], {
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: String(port),
    PARLEY_API_KEYS: JSON.stringify([
      { key: KEYS.admin, role: 'admin' },
      { key: KEYS.ingest, role: 'ingest' },
      { key: KEYS.both, roles: ['marketer', 'analyst'] },
      { key: KEYS.analyst, role: 'analyst' },
      { key: KEYS.limited, roles: ['marketer', 'analyst'], businesses: [BUSINESSES[0]] },
    ]),
  });
  // A world that fails to come up takes its Parley down with it.
  try {
    return await fill(parley);
  } catch (err) {
    await parley.stop('SIGKILL');
    throw err;
  }
}

async function fill(parley: ParleyProcess): Promise<World> {
  const url = (await parley.waitForOutput(/Dashboards: (http:\/\/\S+?)\/?\s/, 120_000)).replace(/\/$/, '');
  const sim = await runSimulation({
    url,
    key: KEYS.ingest,
    businesses: 3,
    users: 150,
    days: 7,
    seed: SEED,
    concurrency: 2,
  });
  // Campaigns with impressions, clicks and orders, from the simulated ad server.
  const ads = await runAdServer({
    url,
    key: KEYS.admin,
    seed: SEED,
    users: 120,
    decisions: 120,
    campaigns: 3,
  });
  // Campaigns with a holdout (treatment and control users, conversions after the first would-be
  // offer), for the lift view; it returns once the lift report has counted every user.
  const lift = await runLift({ url, key: KEYS.admin, seed: SEED, users: 300, campaigns: 2, concurrency: 2 });
  // Every accepted event stored before anything is read (the impressions, clicks and orders the
  // ad server caused included): at least that many rows, and no new row for a second.
  let last = -1;
  await waitFor(
    'the sink to store every simulated event',
    async () => {
      const text = await (
        await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEYS.admin}` } })
      ).text();
      const rows = Number(/^parley_sink_rows_total (\d+)/m.exec(text)?.[1] ?? 0);
      const settled = rows >= sim.accepted + ads.served && rows === last;
      last = rows;
      return settled;
    },
    90_000,
    1000,
  );
  const api = (method: string, path: string, body?: unknown, accept?: string) =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${KEYS.admin}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(accept ? { accept } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  // Orders in two more currencies after clicks, so campaigns earn value in several currencies.
  const clicked = (await (await api('GET', '/v1/events?type=sponsored.clicked&limit=2')).json()).events as {
    business_id: string;
    user_id: string;
    channel: string;
  }[];
  const orders = clicked.map((c, i) => ({
    event_id: `e2e-order-${i}`,
    type: 'order.placed',
    occurred_at: new Date().toISOString(),
    business_id: c.business_id,
    user_id: c.user_id,
    channel: c.channel,
    props: { order_id: `e2e-${i}`, value: 12.5 + i, currency: ['USD', 'GBP'][i] },
  }));
  const sent = await api('POST', '/v1/events', orders);
  if (!sent.ok) throw new Error(`the orders were refused: ${sent.status} ${await sent.text()}`);
  await waitFor(
    'the orders in other currencies to be stored',
    async () => {
      const stored = (await (await api('GET', '/v1/events?type=order.placed&limit=1000')).json()).events;
      return orders.every((o) => stored.some((e: { event_id: string }) => e.event_id === o.event_id));
    },
    30_000,
    250,
  );
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  return {
    parley,
    url,
    browser,
    accepted: sim.accepted,
    liftCampaigns: lift.rows.map((r) => r.campaign_id),
    cspViolations: [],
    api,
    async close() {
      await browser.close();
      await parley.stop();
    },
  };
}

/** A fresh context (no cookies) whose pages report CSP violations and script errors to the world. */
export async function newContext(
  w: World,
  opts: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark' } = {},
): Promise<BrowserContext> {
  const ctx = await w.browser.newContext({
    viewport: opts.viewport ?? { width: 1280, height: 800 },
    colorScheme: opts.colorScheme ?? 'light',
    acceptDownloads: true,
  });
  // Violations are reported by the page itself, caught or not (an eval refused inside a try
  // throws an EvalError the app may swallow, yet still fires the event).
  await ctx.exposeBinding('__parleyCspViolation', (_src, text: string) => {
    w.cspViolations.push(text);
  });
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __parleyCspViolation(t: string): void }).__parleyCspViolation(
        `${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`,
      );
    });
  });
  ctx.on('page', (page) => watch(w, page));
  return ctx;
}

function watch(w: World, page: Page) {
  page.on('console', (m) => {
    if (/Content[ -]Security[ -]Policy/i.test(m.text())) w.cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => w.cspViolations.push(`page error: ${e.message}`));
}

/** Opens `path` and signs in with the key on the login page the app shows first. */
export async function signIn(w: World, ctx: BrowserContext, apiKey: string, path = '/'): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(`${w.url}${path}`);
  await page.getByLabel('API key').fill(apiKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  return page;
}

/** axe (WCAG 2 A and AA): the serious and critical violations on the page as it is. */
export async function seriousA11y(page: Page) {
  // axe-core's own script, run in the page through the DevTools protocol (not a <script> the
  // page's CSP would refuse).
  await page.evaluate(axe.source);
  const r = await page.evaluate(() =>
    (window as unknown as { axe: typeof axe }).axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] },
    }),
  );
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

/** The text of every cell of a table, row by row (header row excluded). */
export async function tableText(page: Page, testId: string): Promise<string[][]> {
  return page
    .getByTestId(testId)
    .locator('tbody tr')
    .evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')));
}

/** The labels of a table's columns (sort marks left out). */
export async function tableHead(page: Page, testId: string): Promise<string[]> {
  const labels = await page.getByTestId(testId).locator('thead th').allTextContents();
  return labels.map((l) => l.replace(/ [▲▼]$/, ''));
}

/** The text of every cell of a table's footer row (its header cell included), one per column. */
export async function tableFoot(page: Page, testId: string): Promise<string[]> {
  return page
    .getByTestId(testId)
    .locator('tfoot tr')
    .first()
    .evaluate((r) =>
      [...r.querySelectorAll('th, td')].flatMap((c) => [
        c.textContent ?? '',
        ...Array<string>((c as HTMLTableCellElement).colSpan - 1).fill(''),
      ]),
    );
}
