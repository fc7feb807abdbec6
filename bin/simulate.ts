import { parseArgs } from 'node:util';
import { parseConfig } from '../core/config.ts';
import type { EventType } from '../core/events/schema.ts';
import { formatAdServerSummary, runAdServer, splitAdServerArgs } from './sim/adserver.ts';
import { formatLiftSummary, runLift } from './sim/lift.ts';
import { createProgress, type ProgressStream } from './sim/progress.ts';
import { SimulateError, sendEvents } from './sim/sender.ts';
import { type Tally, createTally, generateTraffic } from './sim/traffic.ts';

// `parley simulate`: realistic conversational traffic sent to a running Parley over HTTP.

export type SimulateOptions = {
  url: string;
  key: string;
  businesses: number;
  users: number;
  days: number;
  seed: string;
  concurrency: number;
  rate?: number;
  /** End of the simulated period; default: now. */
  now?: number;
  progress?: ProgressStream;
};

export type SimulateResult = Tally & {
  seed: string;
  days: number;
  accepted: number;
  rejected: number;
  retries: number;
  samples: { event_id: string; error: string }[];
  elapsedMs: number;
};

const USAGE = `Usage: parley simulate [options]
  --url URL          Parley's address (default http://PARLEY_HOST:PARLEY_PORT, i.e. http://127.0.0.1:8080)
  --key KEY          API key with role ingest or admin (default: env PARLEY_API_KEY, then PARLEY_ADMIN_KEY)
  --businesses N     businesses to simulate (default 20)
  --users N          users who message them (default 2000)
  --days N           days of traffic, ending now (default 7)
  --seed S           same seed, same events (ids included); default: random, printed
  --concurrency N    requests in flight (default 4)
  --rate N           at most N events per second (default: as fast as Parley takes them)

Ad-server mode (--adserver): campaigns with known true click rates; each of --users threads asks
POST /v1/decisions (30% mention "haircut", which the first campaign targets), delivers 90% of the
offers (signed Messenger/WhatsApp webhooks when PARLEY_META_APP_SECRET is set, else
POST /v1/impressions), clicks delivered ones at the campaign's true rate; some who click order.
  --adserver         play the ad server instead of sending conversation traffic
  --decisions N      decisions to ask for (default: one per user)
  --campaigns N      campaigns to create, true click rates spread from 1% to 8% (default 4)

Lift mode (--lift): --campaigns N (default 3) campaigns with a 50% holdout and true effects from
none to +5 points on a 10% conversion chance, --users N users each, sent as offer markers,
impressions, clicks and orders; then prints the lift report next to the truth.
  --lift             send a lift scenario and compare the lift report with its known effects`;

export async function runSimulation(opts: SimulateOptions): Promise<SimulateResult> {
  const traffic = {
    seed: opts.seed,
    businesses: opts.businesses,
    users: opts.users,
    days: opts.days,
    now: opts.now ?? Date.now(),
  };
  // A first pass counts what will be sent (generation is cheap and deterministic).
  const tally = createTally();
  for (const e of generateTraffic(traffic)) tally.add(e);
  const plan = tally.result();

  const progress = createProgress({ total: plan.events, stream: opts.progress ?? process.stderr });
  const started = performance.now();
  const sent = await sendEvents(generateTraffic(traffic), {
    url: opts.url,
    key: opts.key,
    concurrency: opts.concurrency,
    rate: opts.rate,
    onProgress: (p) => progress.update(p),
  });
  progress.done();
  return {
    ...plan,
    seed: opts.seed,
    days: opts.days,
    accepted: sent.accepted,
    rejected: sent.rejected,
    retries: sent.retries,
    samples: sent.samples,
    elapsedMs: performance.now() - started,
  };
}

const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 2 });

export function formatSummary(r: SimulateResult): string {
  const rows: [string, string][] = [];
  const types = Object.entries(r.byType).sort((a, b) => b[1] - a[1]) as [EventType, number][];
  for (const [type, n] of types) rows.push([type, fmt(n)]);
  rows.push(['total events', fmt(r.events)], ['', '']);
  const conv = Object.entries(r.conversions.byType)
    .map(([t, n]) => `${t} ${fmt(n)}`)
    .join(', ');
  const value = Object.entries(r.conversions.value)
    .sort((a, b) => b[1] - a[1])
    .map(
      ([c, v]) => `${c} ${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`,
    )
    .join(' · ');
  const seconds = r.elapsedMs / 1000;
  rows.push(
    ['users', fmt(r.users)],
    ['businesses', fmt(r.businesses)],
    ['conversions', `${fmt(r.conversions.count)}${conv ? ` (${conv})` : ''}`],
    ['conversion value', value || '0'],
    ['accepted', fmt(r.accepted)],
    ['rejected', fmt(r.rejected)],
    ['retries', fmt(r.retries)],
    ['elapsed', `${seconds.toFixed(1)} s`],
    ['events/s', fmt(Math.round(seconds > 0 ? r.accepted / seconds : 0))],
  );
  // Plain figures line up on the right; descriptive values start where the figures do.
  const figure = /^[\d,.]+$/;
  const width = Math.max(...rows.map(([k]) => k.length));
  const figures = Math.max(...rows.map(([, v]) => (figure.test(v) ? v.length : 0)));
  const lines = rows.map(([k, v]) =>
    k ? `  ${k.padEnd(width)}  ${figure.test(v) ? v.padStart(figures) : v}` : '',
  );
  const head = `Simulated ${r.days} day${r.days === 1 ? '' : 's'} of traffic (seed ${r.seed})`;
  const samples = r.samples.map((s) => `  rejected ${s.event_id}: ${s.error}`);
  return [head, '', ...lines, ...(samples.length ? ['', ...samples] : [])].join('\n');
}

function positive(name: string, raw: string | undefined, def: number, integer?: boolean): number;
function positive(
  name: string,
  raw: string | undefined,
  def: undefined,
  integer?: boolean,
): number | undefined;
function positive(
  name: string,
  raw: string | undefined,
  def: number | undefined,
  integer = true,
): number | undefined {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new SimulateError(
      `--${name} must be a positive ${integer ? 'whole ' : ''}number, not "${raw}"\n\n${USAGE}`,
    );
  }
  return n;
}

/** Turns command-line arguments (and the CLI's own env vars) into options. */
export function parseSimulateArgs(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): SimulateOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: Object.fromEntries(
        ['url', 'key', 'businesses', 'users', 'days', 'seed', 'concurrency', 'rate'].map((k) => [
          k,
          { type: 'string' as const },
        ]),
      ),
      strict: true,
    }));
  } catch (err) {
    throw new SimulateError(`${(err as Error).message}\n\n${USAGE}`);
  }
  const v = values as Record<string, string | undefined>;
  let url = v.url;
  if (!url) {
    const config = parseConfig(env);
    const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
    url = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
  }
  if (!URL.canParse(url))
    throw new SimulateError(`--url must be a URL such as http://127.0.0.1:8080, not "${url}"`);
  const key = v.key ?? env.PARLEY_API_KEY ?? env.PARLEY_ADMIN_KEY;
  if (!key) {
    throw new SimulateError(
      `an API key is needed: pass --key KEY or set PARLEY_API_KEY (a key with role ingest or admin; the first start of Parley prints an admin key)\n\n${USAGE}`,
    );
  }
  return {
    url,
    key,
    businesses: positive('businesses', v.businesses, 20),
    users: positive('users', v.users, 2000),
    days: positive('days', v.days, 7, false),
    seed: v.seed ?? String(Math.floor(Math.random() * 1e9)),
    concurrency: positive('concurrency', v.concurrency, 4),
    rate: positive('rate', v.rate, undefined, false),
  };
}

export async function simulateCommand(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(USAGE);
    return;
  }
  if (args.includes('--adserver')) {
    const { rest, decisions, campaigns } = splitAdServerArgs(args);
    const o = parseSimulateArgs(rest);
    const r = await runAdServer({
      url: o.url,
      key: o.key,
      seed: o.seed,
      users: o.users,
      decisions: decisions ?? o.users,
      campaigns: campaigns ?? 4,
      concurrency: o.concurrency,
      metaAppSecret: parseConfig().meta.appSecret,
    });
    console.log(formatAdServerSummary(r));
    return;
  }
  if (args.includes('--lift')) {
    const { rest, campaigns } = splitAdServerArgs(args.filter((a) => a !== '--lift'));
    const o = parseSimulateArgs(rest);
    const r = await runLift({
      url: o.url,
      key: o.key,
      seed: o.seed,
      users: o.users,
      campaigns: campaigns ?? 3,
      concurrency: o.concurrency,
    });
    console.log(formatLiftSummary(r));
    return;
  }
  const opts = parseSimulateArgs(args);
  process.stderr.write(
    `Simulating ${fmt(opts.users)} users of ${fmt(opts.businesses)} businesses over ${opts.days} days (seed ${opts.seed}) → ${opts.url}\n`,
  );
  const result = await runSimulation(opts);
  console.log(formatSummary(result));
  if (result.rejected > 0) process.exitCode = 1;
}
