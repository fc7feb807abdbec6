import { describe, expect, it } from 'vitest';
import { normalizeEvent } from '../../core/events/normalize.ts';
import { hashEmail } from '../../core/events/privacy.ts';
import { KINDS, SIM_KEYWORDS } from './catalog.ts';
import { counterUuid } from './random.ts';
import {
  type SimEvent,
  type TrafficOptions,
  createTally,
  generateTraffic,
  makeBusinesses,
} from './traffic.ts';

const NOW = Date.parse('2026-03-04T18:00:00.000Z');
const opts: TrafficOptions = { seed: 'unit', businesses: 12, users: 1500, days: 7, now: NOW };
const events = [...generateTraffic(opts)];
function groupBy<T, K>(items: T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = m.get(k);
    if (list) list.push(t);
    else m.set(k, [t]);
  }
  return m;
}
const byUser = groupBy(events, (e) => e.user_id);
const count = (pred: (e: SimEvent) => boolean) => events.filter(pred).length;

describe('generateTraffic', () => {
  it('is deterministic for a seed, and another seed gives other traffic', () => {
    const again = [...generateTraffic(opts)];
    expect(again).toEqual(events);
    const other = [...generateTraffic({ ...opts, seed: 'other' })];
    expect(other[0].event_id).not.toBe(events[0].event_id);
    expect(other.length).not.toBe(events.length);
  });

  it('re-stamped later, at any time of day, holds the same events shifted by the same time', () => {
    // Runs re-sent minutes apart must be the same events (ids, types, props), whatever the hour.
    for (const now of [NOW, Date.parse('2026-03-04T21:58:00.000Z'), Date.parse('2026-03-05T07:59:30.000Z')]) {
      const base = { ...opts, users: 300, now };
      const first = [...generateTraffic(base)];
      const later = [...generateTraffic({ ...base, now: now + 5 * 60_000 })];
      expect(later.length).toBe(first.length);
      // Times shift: occurred_at and the times props carry (read watermarks, appointment times).
      const back = (v: unknown): unknown =>
        typeof v === 'number' && v > 1e12
          ? v - 5 * 60_000
          : typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)
            ? new Date(Date.parse(v) - 5 * 60_000).toISOString()
            : v;
      const shifted = later.map((e) => ({
        ...e,
        occurred_at: back(e.occurred_at),
        props: Object.fromEntries(Object.entries(e.props).map(([k, v]) => [k, back(v)])),
      }));
      expect(shifted).toEqual(first);
    }
  });

  it('gives every event a unique UUID-shaped id', () => {
    expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
    for (const e of events.slice(0, 200))
      expect(e.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(counterUuid('0123456789abcdef0123', 255)).toBe('01234567-89ab-8def-8123-0000000000ff');
  });

  it('produces only events that ingest accepts, and that reduce to private, keyword-tagged form', () => {
    const ctx = { now: NOW, maxFutureMs: 0, keywords: SIM_KEYWORDS };
    let withKeywords = 0;
    for (const e of events) {
      const r = normalizeEvent(e, ctx);
      if (!r.ok) throw new Error(`${e.type} ${JSON.stringify(e.props)} rejected: ${r.error}`);
      expect(r.value.props).not.toHaveProperty('text');
      expect(r.value.props).not.toHaveProperty('email');
      if (e.type === 'lead.submitted')
        expect(r.value.props.email_sha256).toBe(hashEmail(e.props.email as string));
      if (Array.isArray(r.value.props.keywords) && r.value.props.keywords.length) withKeywords++;
    }
    // Customers mention prices, appointments, orders…: most first messages match a keyword.
    expect(withKeywords / count((e) => e.type === 'message.received')).toBeGreaterThan(0.4);
  });

  it('keeps every timestamp inside the period, never in the future, each user in time order', () => {
    const from = NOW - 7 * 86_400_000;
    for (const e of events) {
      const t = Date.parse(e.occurred_at);
      expect(t).toBeLessThanOrEqual(NOW);
      expect(t).toBeGreaterThanOrEqual(from);
    }
    for (const list of byUser.values()) {
      const times = list.map((e) => Date.parse(e.occurred_at));
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
    // Users arrive throughout the period, not all at once.
    const firsts = [...byUser.values()].map((l) => Date.parse(l[0].occurred_at));
    const perDay = groupBy(firsts, (t) => Math.floor((NOW - t) / 86_400_000));
    expect(perDay.size).toBe(7);
    for (const day of perDay.values()) expect(day.length).toBeGreaterThan(opts.users / 7 / 2);
  });

  it('spreads users over every business, a few busy ones and a long tail', () => {
    const tally = createTally();
    for (const e of events) tally.add(e);
    const t = tally.result();
    expect(t.users).toBe(opts.users);
    expect(t.businesses).toBe(opts.businesses);
    const usersPer = [...groupBy(events, (e) => e.business_id).values()].map(
      (l) => new Set(l.map((e) => e.user_id)).size,
    );
    expect(Math.max(...usersPer)).toBeLessThan(opts.users * 0.35);
    expect(Math.min(...usersPer)).toBeGreaterThan(opts.users * 0.01);
    expect(Math.max(...usersPer) / Math.min(...usersPer)).toBeGreaterThan(2);
    const multi = [...byUser.values()].filter((l) => new Set(l.map((e) => e.business_id)).size > 1).length;
    expect(multi / opts.users).toBeGreaterThan(0.05);
    expect(multi / opts.users).toBeLessThan(0.25);
  });

  it('has a realistic conversation shape and conversion rates', () => {
    const n = (type: string) => count((e) => e.type === type);
    const users = opts.users;
    expect(n('message.received') / users).toBeGreaterThan(1.2);
    expect(n('message.sent') / n('message.received')).toBeGreaterThan(0.7);
    expect(n('message.sent') / n('message.received')).toBeLessThan(1.6);
    expect(n('message.delivered')).toBeLessThanOrEqual(n('message.sent'));
    expect(n('message.read')).toBeLessThan(n('message.delivered'));
    expect(count((e) => e.type === 'message.read' && e.channel === 'sms')).toBe(0);

    const converted = new Set(
      events.filter((e) => ['appointment.booked', 'order.placed'].includes(e.type)).map((e) => e.user_id),
    );
    expect(converted.size / users).toBeGreaterThan(0.08);
    expect(converted.size / users).toBeLessThan(0.5);
    expect(n('lead.submitted') / users).toBeGreaterThan(0.03);
    expect(n('lead.submitted') / users).toBeLessThan(0.25);
    expect(n('appointment.cancelled')).toBeGreaterThan(0);
    expect(n('appointment.cancelled') / n('appointment.booked')).toBeLessThan(0.3);
    expect(n('optout') / users).toBeGreaterThan(0.005);
    expect(n('optout') / users).toBeLessThan(0.06);
    expect(n('conversation.blocked')).toBeGreaterThan(0);
    expect(n('conversation.blocked') / users).toBeLessThan(0.03);

    // People who came from an ad convert more often than the rest.
    const fromAd = new Set(
      events.filter((e) => e.type === 'referral' && e.props.source === 'ad').map((e) => e.user_id),
    );
    expect(fromAd.size / users).toBeGreaterThan(0.15);
    expect(fromAd.size / users).toBeLessThan(0.45);
    const rate = (set: Set<string>, inAd: boolean) => {
      const group = [...byUser.keys()].filter((u) => fromAd.has(u) === inAd);
      return group.filter((u) => set.has(u)).length / group.length;
    };
    expect(rate(converted, true)).toBeGreaterThan(rate(converted, false));
  });

  it('sells what each kind of business sells, at its prices, on its channels', () => {
    const businesses = new Map(makeBusinesses(opts).map((b) => [b.id, b]));
    for (const e of events) {
      const b = businesses.get(e.business_id)!;
      expect(b.kind.channels.map(([c]) => c)).toContain(e.channel);
      if (e.type === 'appointment.booked') {
        expect(b.kind.conversion).toBe('appointment');
        const service = b.kind.services.find((s) => s.name === e.props.service)!;
        expect(e.props.value).toBeGreaterThanOrEqual(service.min);
        expect(e.props.value).toBeLessThanOrEqual(service.max);
        expect(e.props.currency).toBe(b.currency);
      }
      if (e.type === 'order.placed') {
        expect(b.kind.kind).toBe('shop');
        expect(e.props.value).toBeGreaterThan(0);
      }
    }
    expect(new Set([...businesses.values()].map((b) => b.kind.kind))).toEqual(
      new Set(KINDS.map((k) => k.kind)),
    );
    // Cancellations refer to a booking of the same user made earlier.
    const booked = new Map(
      events.filter((e) => e.type === 'appointment.booked').map((e) => [e.props.appointment_id, e]),
    );
    for (const c of events.filter((e) => e.type === 'appointment.cancelled')) {
      const b = booked.get(c.props.appointment_id)!;
      expect(b.user_id).toBe(c.user_id);
      expect(Date.parse(b.occurred_at)).toBeLessThan(Date.parse(c.occurred_at));
    }
  });
});
