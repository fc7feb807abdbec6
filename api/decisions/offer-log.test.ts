import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLocalBus } from '../../core/bus/local.ts';
import type { Bus, InMessage } from '../../core/bus/types.ts';
import { createLogger } from '../../core/log.ts';
import { createMetrics } from '../../core/metrics.ts';
import { createOfferLog, OfferQueue } from './offer-log.ts';
import type { ServedFact } from './state.ts';

// The offers topic's records, encoded as each offer is made into one reused buffer: the same JSON
// as JSON.stringify of the documented record, whatever characters the ids hold.

const logger = createLogger({ level: 'silent' });

const fact = (i: number, over: Partial<ServedFact> = {}): ServedFact => ({
  decisionId: `d_abc${i.toString(36)}`,
  campaignId: 'cmp_spring',
  businessId: 'biz_barber_42',
  userId: `u_${i}`,
  threadId: `t_biz_barber_42_u_${i}`,
  channel: 'whatsapp',
  priceMicros: 1000 + i,
  atMs: Date.UTC(2026, 0, 1) + i,
  ...over,
});

const documented = (f: ServedFact) =>
  JSON.stringify({
    decision_id: f.decisionId,
    campaign_id: f.campaignId,
    business_id: f.businessId,
    user_id: f.userId,
    thread_id: f.threadId,
    channel: f.channel,
    price_micros: f.priceMicros,
    offered_at: new Date(f.atMs).toISOString(),
  });

/** A string as it reads back from its UTF-8 bytes (a lone surrogate becomes U+FFFD). */
const toUtf8 = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

const ODD_IDS = [
  'plain_id-1.2:3@x',
  'quote"inside',
  'back\\slash',
  'tab\tnew\nline\u0001',
  'émoji 💈 and ünïcode',
  'lone \ud800 surrogate',
  '',
];

describe('offer records', () => {
  it('are the JSON of the documented record, for any id in any field', () => {
    const q = new OfferQueue(64, 1 << 20);
    const facts = ODD_IDS.flatMap((odd, i) => [
      fact(i, { userId: odd, threadId: odd, businessId: odd, campaignId: odd }),
      fact(i, { decisionId: odd, channel: odd }),
      fact(i, { decisionId: `${odd}${odd}`, atMs: Date.UTC(2026, 0, 1, 23, 59, 59, i * 7) }),
    ]);
    for (const f of facts) expect(q.add(f)).toBe(true);
    const out = q.take();
    expect(out.map((m) => m.value.toString())).toEqual(facts.map((f) => toUtf8(documented(f))));
    expect(out.map((m) => m.key)).toEqual(facts.map((f) => toUtf8(f.userId)));
  });

  it('wait as bytes and come out as messages keyed by user, in order, the buffer growing as needed', () => {
    const q = new OfferQueue(64, 1 << 20);
    const facts = ODD_IDS.map((u, i) => fact(i, { userId: u, threadId: `t_${u}` }));
    for (let i = 0; i < 500; i++) facts.push(fact(i));
    for (const f of facts) expect(q.add(f)).toBe(true);
    expect(q.length).toBe(facts.length);
    const out = q.take();
    expect(q.length).toBe(0);
    // Lone surrogates do not survive UTF-8; everything else comes back as it was.
    expect(out.map((m) => m.key)).toEqual(facts.map((f) => toUtf8(f.userId)));
    expect(out.map((m) => m.value.toString())).toEqual(facts.map((f) => toUtf8(documented(f))));
    // The buffer is reused: what was taken stays as it was.
    for (let i = 0; i < 10; i++) q.add(fact(10_000 + i, { userId: 'someone_else' }));
    expect(out[ODD_IDS.length].value.toString()).toBe(documented(facts[ODD_IDS.length]));
    expect(q.take().map((m) => m.key)).toEqual(Array(10).fill('someone_else'));
  });

  it('give each offer its own time to the millisecond, across seconds and years', () => {
    const q = new OfferQueue();
    const times = [
      0, 1, 9, 10, 99, 100, 999, 1000, 1001, 61_234, 86_399_999, 253_402_300_799_999, 253_402_300_800_001,
    ];
    const facts = times.map((t, i) => fact(i, { atMs: Date.UTC(2026, 0, 1) + t }));
    facts.push(fact(99, { atMs: 253_402_300_800_042 }), fact(98, { atMs: -1 }));
    for (const f of facts) q.add(f);
    expect(q.take().map((m) => m.value.toString())).toEqual(facts.map(documented));
  });

  it('refuses an offer when its bytes would pass the limit', () => {
    const q = new OfferQueue(256, 1024);
    let added = 0;
    while (q.add(fact(added))) added++;
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThan(10);
    expect(q.bytes).toBeLessThanOrEqual(1024 + 4 * 2 * 1024);
    expect(q.take()).toHaveLength(added);
    expect(q.add(fact(0))).toBe(true);
  });
});

describe('the offer log', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publishes every offer to the offers topic in batches, off the answer path', async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-offer-log-'));
    const bus: Bus = await createLocalBus({ dir, logger });
    await bus.ensureTopics([{ name: 'offers', partitions: 2 }]);
    const metrics = createMetrics();
    const log = createOfferLog({ bus, topic: 'offers', metrics, logger });
    const facts = Array.from({ length: 4500 }, (_, i) => fact(i, i === 3 ? { userId: 'u_"odd"' } : {}));
    for (const f of facts) log.add(f);
    await log.stop();
    const seen: InMessage[] = [];
    const reader = await bus.read({
      topic: 'offers',
      from: 'earliest',
      handler: async (b) => {
        seen.push(...b.messages);
      },
    });
    await reader.ready;
    for (let i = 0; i < 100 && seen.length < facts.length; i++) await new Promise((r) => setTimeout(r, 20));
    await reader.stop();
    expect(seen).toHaveLength(facts.length);
    const byDecision = new Map(seen.map((m) => [JSON.parse(m.value.toString()).decision_id, m]));
    for (const f of facts) {
      const m = byDecision.get(f.decisionId);
      expect(m?.key).toBe(f.userId);
      expect(m?.value.toString()).toBe(documented(f));
    }
    const logged = await metrics.decisionRecordsLogged.get();
    expect(logged.values.find((v) => v.labels.log === 'offers')?.value).toBe(facts.length);
    await bus.close();
  });
});
