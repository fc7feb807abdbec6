// Webhook ingest on the embedded defaults: signed platform deliveries accepted per second (each
// delivery carries 10 messaging items), against a baseline measured in the same run: the same
// number of events per request posted as canonical events to POST /v1/events.
//
//   node bench/run.js webhooks [--seconds 3] [--concurrency 8]
//
// Parley runs in this process (startParley, every role, embedded engine and log) on a fresh data
// directory; each run posts for a fixed time with concurrent fetch loops on 127.0.0.1.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startParley } from '../bin/server.ts';
import { parseConfig } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { signBody } from '../ingest/webhooks/signature.ts';
import { printTable } from './table.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '8' } },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ITEMS = 10;
const APP_SECRET = 'bench-app-secret';
const KEY = 'pk_bench_ingest_0123456789abcdef';
const run = Date.now().toString(36);
const t0 = Date.now() - 60_000;
const texts = [
  'Can I book a haircut for Saturday?',
  'What time do you open tomorrow?',
  'Is the beard trim deal still on?',
];

type Request = { url: string; headers: Record<string, string>; body: string; expect: number };

function canonical(seq: number): Request {
  const events = Array.from({ length: ITEMS }, (_, i) => ({
    event_id: `${run}-api-${seq}-${i}`,
    type: 'message.received',
    occurred_at: new Date(t0 + seq).toISOString(),
    business_id: 'biz_bench',
    user_id: `u_${seq % 500}`,
    channel: 'messenger',
    props: { text: texts[i % texts.length] },
  }));
  return {
    url: '/v1/events',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(events),
    expect: 202,
  };
}

function messenger(seq: number): Request {
  const messaging = Array.from({ length: ITEMS }, (_, i) => ({
    sender: { id: String(7_000_000_000_000_000 + (seq % 500)) },
    recipient: { id: '104512345678901' },
    timestamp: t0 + seq,
    message: { mid: `m_${run}_${seq}_${i}`, text: texts[i % texts.length] },
  }));
  const body = JSON.stringify({
    object: 'page',
    entry: [{ id: '104512345678901', time: t0 + seq, messaging }],
  });
  return {
    url: '/v1/webhooks/messenger',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(APP_SECRET, body) },
    body,
    expect: 200,
  };
}

function whatsapp(seq: number): Request {
  const messages = Array.from({ length: ITEMS }, (_, i) => ({
    from: String(16_505_550_000 + (seq % 500)),
    id: `wamid.${run}_${seq}_${i}`,
    timestamp: String(Math.floor((t0 + seq) / 1000)),
    type: 'text',
    text: { body: texts[i % texts.length] },
  }));
  const value = {
    messaging_product: 'whatsapp',
    metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
    messages,
  };
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '102290129340398', changes: [{ field: 'messages', value }] }],
  });
  return {
    url: '/v1/webhooks/whatsapp',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(APP_SECRET, body) },
    body,
    expect: 200,
  };
}

async function measure(base: string, make: (seq: number) => Request) {
  let seq = 0;
  const latencies: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  const worker = async () => {
    while (performance.now() < end) {
      const r = make(seq++);
      const s = performance.now();
      const res = await fetch(base + r.url, { method: 'POST', headers: r.headers, body: r.body });
      const out = (await res.json()) as { accepted?: number };
      if (res.status !== r.expect || out.accepted !== ITEMS)
        throw new Error(`${r.url} answered ${res.status} ${JSON.stringify(out)}`);
      latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const secs = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    secs,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
  };
}

const dir = await mkdtemp(join(tmpdir(), 'parley-bench-webhooks-'));
const parley = await startParley(
  parseConfig({
    PARLEY_DATA_DIR: dir,
    PARLEY_PORT: '0',
    PARLEY_API_KEYS: JSON.stringify([{ key: KEY, role: 'ingest' }]),
    PARLEY_META_APP_SECRET: APP_SECRET,
    PARLEY_META_VERIFY_TOKEN: 'bench-verify-token',
    PARLEY_HASH_SECRET: 'bench-hash-secret',
    PARLEY_KEYWORDS: 'haircut,saturday',
  }),
  { logger: createLogger({ level: 'warn' }), out: () => {} },
);
try {
  const base = await measure(parley.url, canonical);
  const msg = await measure(parley.url, messenger);
  const wa = await measure(parley.url, whatsapp);
  const rate = (m: typeof base) => m.requests / m.secs;
  const row = (name: string, m: typeof base) => [
    name,
    m.requests,
    Math.round(rate(m)),
    Math.round(rate(m) * ITEMS),
    m.p50.toFixed(1),
    m.p99.toFixed(1),
    (rate(m) / rate(base)).toFixed(2),
  ];
  printTable(
    `webhooks: ${ITEMS} items per request, ${CONCURRENCY} concurrent clients, ${SECONDS}s each, in-process Parley on the embedded defaults`,
    [
      ['run', 'requests', 'requests/s', 'events/s', 'p50 ms', 'p99 ms', 'ratio'],
      row('baseline: POST /v1/events (10 canonical events)', base),
      row('messenger: signed delivery, 10 messages', msg),
      row('whatsapp: signed delivery, 10 messages', wa),
    ],
  );
  console.log(
    'deliveries/s accepted = requests/s of the webhook rows (200 only after the bus has the events)',
  );
} finally {
  await parley.stop();
  await rm(dir, { recursive: true, force: true });
}
