import { createDeliveries } from './delivery.ts';
import { createRng } from './random.ts';
import { SimulateError } from './sender.ts';

// `parley simulate --adserver`: Parley's ad-server side. Users who talk to a business get
// campaigns with known true click rates (the first one contextual: it targets the keyword
// "haircut", which 30% of requests mention); each thread asks POST /v1/decisions, delivers 90% of
// the offers (confirmed by signed Messenger/WhatsApp webhooks when the app secret is known, else
// by POST /v1/impressions) and never delivers the rest; the user clicks a delivered message at
// its campaign's true rate, and some who click place an order. The summary puts each campaign's
// observed delivery next to its truth, so one can watch ranking and exploration.

export type AdServerOptions = {
  url: string;
  key: string;
  seed: string;
  users: number;
  decisions: number;
  campaigns: number;
  /** Signs Messenger and WhatsApp deliveries; without it every delivery is confirmed in batches. */
  metaAppSecret?: string;
  /** Of users who click, the share who then order. */
  conversionRate?: number;
  concurrency?: number;
};

export type CampaignOutcome = {
  campaign_id: string;
  name: string;
  true_click_rate: number;
  targeting: 'contextual' | 'none';
  offered: number;
  /** Offers delivered: the impressions Parley records. */
  served: number;
  clicks: number;
  orders: number;
  spend_micros: number;
};

export type AdServerResult = {
  seed: string;
  business_id: string;
  asked: number;
  offered: number;
  served: number;
  undelivered: number;
  /** Deliveries confirmed by the platforms' webhooks (the rest by POST /v1/impressions). */
  byWebhook: number;
  nothing: number;
  campaigns: CampaignOutcome[];
};

const CHANNELS = ['webchat', 'sms', 'instagram', 'messenger', 'whatsapp'] as const;

async function http(opts: AdServerOptions, method: string, path: string, body?: unknown) {
  const res = await fetch(`${opts.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${opts.key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (res.status >= 400)
    throw new SimulateError(`${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
  return { status: res.status, json: json as Record<string, unknown> };
}

/** True click rates spread from 1% to 8%, the best last. */
export const trueRates = (n: number) =>
  Array.from({ length: n }, (_, i) => (n === 1 ? 0.05 : 0.01 + (0.07 * i) / (n - 1)));

export async function runAdServer(opts: AdServerOptions): Promise<AdServerResult> {
  const rng = createRng(`${opts.seed}:adserver`);
  const business = `biz_sim_ads_${opts.seed}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
  const users = Array.from({ length: opts.users }, (_, i) => `u_ads_${opts.seed}_${i}`);
  const now = Date.now();
  // Every user has talked to the business, so channel policies allow sponsored messages.
  for (let i = 0; i < users.length; i += 1000)
    await http(
      opts,
      'POST',
      '/v1/events',
      users.slice(i, i + 1000).map((u, j) => ({
        event_id: `ads-${opts.seed}-hello-${i + j}`,
        type: 'message.received',
        occurred_at: new Date(now - 60_000).toISOString(),
        business_id: business,
        user_id: u,
        channel: 'webchat',
        props: { text_length: 20 },
      })),
    );
  const rates = trueRates(opts.campaigns);
  const outcomes = new Map<string, CampaignOutcome>();
  for (let i = 0; i < opts.campaigns; i++) {
    const name = `Sim offer ${i + 1}`;
    const { json } = await http(opts, 'POST', '/v1/campaigns', {
      business_id: business,
      name,
      status: 'active',
      creative: { text: `${name}: book this week and save`, buttons: [{ title: 'Book' }] },
      schedule: { start: new Date(now - 3600_000).toISOString() },
      ...(i === 0 ? { targeting: { keywords_any: ['haircut'] } } : {}),
      budget: { total_micros: 1_000_000_000 },
      bid: { cpc_micros: 500_000 },
      frequency_cap: { max: 1, per_seconds: 86_400 },
      pacing: 'asap',
    });
    const id = String(json.id);
    outcomes.set(id, {
      campaign_id: id,
      name,
      true_click_rate: rates[i],
      targeting: i === 0 ? 'contextual' : 'none',
      offered: 0,
      served: 0,
      clicks: 0,
      orders: 0,
      spend_micros: 0,
    });
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    const probe = await fetch(`${opts.url}/v1/decisions/ready`, {
      headers: { authorization: `Bearer ${opts.key}` },
    });
    if (probe.status === 200) break;
    if (Date.now() > deadline)
      throw new SimulateError('the decision engine did not become ready within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }

  let asked = 0;
  let nothing = 0;
  let undelivered = 0;
  let byWebhook = 0;
  const deliveries = createDeliveries(opts);
  let order = 0;
  const queue = users.slice(0, Math.min(opts.decisions, users.length)).map((u) => ({
    user: u,
    channel: rng.pick(CHANNELS),
    clickDraw: rng.next(),
    orderDraw: rng.next(),
    deliverDraw: rng.next(),
    keywords: rng.next() < 0.3 ? ['haircut'] : undefined,
  }));
  async function worker() {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const body = {
        user_id: job.user,
        business_id: business,
        channel: job.channel,
        ...(job.keywords ? { context: { keywords: job.keywords } } : {}),
      };
      let res = await http(opts, 'POST', '/v1/decisions', body);
      // Nothing eligible: ask why. Only "no conversation" means the engine has not yet seen this
      // user's first message; then ask again shortly.
      for (let tries = 0; res.status === 204 && tries < 100; tries++) {
        res = await http(opts, 'POST', '/v1/decisions', { ...body, explain: true });
        const reasons = (res.json.candidates as { reason: string }[] | undefined)?.map((c) => c.reason) ?? [];
        if (res.json.decision_id !== null) break;
        res = { status: 204, json: {} };
        if (reasons.length === 0 || reasons.some((x) => x !== 'no_conversation')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      asked++;
      if (res.status === 204) {
        nothing++;
        continue;
      }
      const d = res.json as {
        campaign_id: string;
        price_micros: number;
        delivery_tag: string;
        tracking: { click_url: string };
      };
      const o = outcomes.get(d.campaign_id);
      if (!o)
        throw new SimulateError(`a decision named campaign ${d.campaign_id}, which this run did not make`);
      o.offered++;
      if (job.deliverDraw < 0.1) {
        undelivered++; // never sent: the offer is released when its hold ends
        continue;
      }
      if ((await deliveries.deliver(job.channel, d.delivery_tag)) === 'webhook') byWebhook++;
      o.served++;
      o.spend_micros += d.price_micros;
      if (job.clickDraw >= o.true_click_rate) continue;
      const u = new URL(d.tracking.click_url);
      const click = await fetch(`${opts.url}${u.pathname}${u.search}`, { redirect: 'manual' });
      if (click.status !== 204 && click.status !== 302)
        throw new SimulateError(`the click URL answered ${click.status}`);
      o.clicks++;
      if (job.orderDraw >= (opts.conversionRate ?? 0.3)) continue;
      o.orders++;
      await http(opts, 'POST', '/v1/events', [
        {
          event_id: `ads-${opts.seed}-order-${order++}`,
          type: 'order.placed',
          occurred_at: new Date().toISOString(),
          business_id: business,
          user_id: job.user,
          channel: job.channel,
          props: { order_id: `o-${opts.seed}-${order}`, value: 40, currency: 'EUR' },
        },
      ]);
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  await deliveries.flush();
  const campaigns = [...outcomes.values()];
  return {
    seed: opts.seed,
    business_id: business,
    asked,
    offered: campaigns.reduce((a, c) => a + c.offered, 0),
    served: campaigns.reduce((a, c) => a + c.served, 0),
    undelivered,
    byWebhook,
    nothing,
    campaigns,
  };
}

export function formatAdServerSummary(r: AdServerResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const rows = [
    [
      'campaign',
      'targeting',
      'true CTR',
      'offered',
      'served',
      'share',
      'clicks',
      'observed CTR',
      'orders',
      'spend',
    ],
    ...r.campaigns.map((c) => [
      c.name,
      c.targeting,
      pct(c.true_click_rate),
      String(c.offered),
      String(c.served),
      pct(r.served ? c.served / r.served : 0),
      String(c.clicks),
      pct(c.served ? c.clicks / c.served : 0),
      String(c.orders),
      (c.spend_micros / 1e6).toFixed(2),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((x) => x[i].length)));
  const line = (x: string[]) =>
    x.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [
    `Ad server: ${r.asked} decisions asked for business ${r.business_id} (seed ${r.seed}); ${r.offered} offered, ${r.served} served (delivered; ${r.byWebhook} confirmed by platform webhooks), ${r.undelivered} never delivered, ${r.nothing} with nothing eligible`,
    '',
    ...rows.map(line),
  ].join('\n');
}

/** Takes `--adserver`, `--decisions N` and `--campaigns N` out of the arguments; the rest are the usual ones. */
export function splitAdServerArgs(args: string[]) {
  const rest: string[] = [];
  const out: { decisions?: number; campaigns?: number } = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--(decisions|campaigns)(?:=(.*))?$/.exec(a);
    if (a === '--adserver') continue;
    if (!m) {
      rest.push(a);
      continue;
    }
    const raw = m[2] ?? args[++i];
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0)
      throw new SimulateError(`--${m[1]} must be a positive whole number, not "${raw}"`);
    out[m[1] as 'decisions' | 'campaigns'] = n;
  }
  return { rest, ...out };
}
