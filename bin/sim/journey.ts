import type { Channel, EventType } from '../../core/events/schema.ts';
import { type BusinessKind, fill } from './catalog.ts';
import type { Rng } from './random.ts';

// One conversation thread between a user and a business, as a list of timed events: the user
// writes, the business answers (bot, agent or staff), messages are delivered and read, and some
// conversations end in a lead, a booking or an order; a few in an opt-out or a block.

export type SimBusiness = { id: string; kind: BusinessKind; currency: string; weight: number };

/** An event as a client sends it to POST /v1/events (raw text and email: ingest reduces them). */
export type SimEvent = {
  event_id: string;
  type: EventType;
  occurred_at: string;
  business_id: string;
  user_id: string;
  channel: Channel;
  props: Record<string, unknown>;
};

export type Timed = { at: number; type: EventType; props: Record<string, unknown> };

export type ThreadPlan = {
  rng: Rng;
  business: SimBusiness;
  channel: Channel;
  /** When the user first writes (ms since the epoch). */
  start: number;
  /** A stable label for ids minted in this thread (appointment and order ids). */
  label: string;
  /**
   * A time at which the simulated clock reads midnight (ms since the epoch; default: UTC
   * midnights). The simulator ties it to its \`now\`, so a run re-stamped later holds the same events.
   */
  midnight?: number;
};

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

const FIRST = [
  'Ana',
  'Ben',
  'Chloe',
  'Dev',
  'Eva',
  'Finn',
  'Grace',
  'Hugo',
  'Ines',
  'Jonas',
  'Kim',
  'Leo',
  'Maya',
  'Noah',
];
const LAST = ['Silva', 'Smith', 'Costa', 'Müller', 'Okafor', 'Rossi', 'Tanaka', 'Nowak', 'Garcia', 'Dubois'];

/** Later sessions start in the daytime (08:00–22:00): people rarely write to a barber at 3am. */
function daytime(rng: Rng, t: number, midnight: number): number {
  const sinceMidnight = (((t - midnight) % DAY) + DAY) % DAY;
  const hour = Math.floor(sinceMidnight / HOUR);
  if (hour >= 8 && hour < 22) return t;
  const day = t - sinceMidnight + (hour >= 22 ? DAY : 0);
  return day + 8 * HOUR + rng.int(0, 3 * HOUR);
}

const money = (x: number) => Math.round(x * 100) / 100;

/** Writes one thread's events on its own clock. */
class Thread {
  readonly out: Timed[] = [];
  constructor(
    readonly rng: Rng,
    readonly readReceipts: boolean,
    public t: number,
  ) {}

  emit(type: EventType, props: Record<string, unknown> = {}, at = this.t) {
    this.out.push({ at, type, props });
  }

  wait(min: number, max: number) {
    this.t += this.rng.int(min, max);
  }

  userMessage(text: string) {
    this.emit('message.received', this.rng.chance(0.05) ? { text, has_attachment: true } : { text });
  }

  /** Deliveries and reads follow a business message; they may interleave with what comes next. */
  businessMessage(sender: 'bot' | 'agent' | 'business', text: string) {
    const sentAt = this.t;
    this.emit('message.sent', { sender, text });
    if (!this.rng.chance(0.96)) return;
    this.emit('message.delivered', { watermark: sentAt }, sentAt + this.rng.int(300, 3 * SEC));
    if (this.readReceipts && this.rng.chance(0.8)) {
      this.emit('message.read', { watermark: sentAt }, sentAt + 3 * SEC + Math.round(this.rng.exp(8 * MIN)));
    }
  }
}

/** The events of one thread, possibly running past the end of the simulation (the caller cuts them). */
export function threadEvents(plan: ThreadPlan): Timed[] {
  const { rng, business, channel } = plan;
  const kind = business.kind;
  const w = new Thread(rng, channel !== 'sms', plan.start); // SMS has no read receipts

  const service = rng.pick(kind.services);
  const price = () => money(rng.between(service.min, service.max));
  const vars = { service: service.name, price: `${price().toFixed(0)} ${business.currency}` };

  const fromAd = rng.chance(0.28);
  if (fromAd) {
    w.emit('referral', {
      source: 'ad',
      ad_id: `ad_${business.id}_${rng.int(1, 3)}`,
      ref: rng.pick(['spring_promo', 'new_clients', 'weekend_offer']),
    });
    w.wait(2 * SEC, 40 * SEC);
  } else if (rng.chance(0.06)) {
    w.emit('referral', { source: 'shortlink', ref: rng.pick(['qr_window', 'bio_link', 'receipt']) });
    w.wait(2 * SEC, 40 * SEC);
  }

  const sessions = Math.min(5, 1 + Math.floor(rng.exp(0.9)));
  const converts = rng.chance(kind.convertRate * (fromAd ? 1.6 : 1));
  const leads = rng.chance(kind.leadRate * (fromAd ? 1.5 : 1));
  const convertAt = rng.int(0, sessions - 1);
  const leaveAt = rng.chance(0.04) ? rng.int(0, sessions - 1) : -1;

  for (let s = 0; s < sessions; s++) {
    if (s > 0) w.t = daytime(rng, w.t + HOUR + Math.round(rng.exp(1.5 * DAY)), plan.midnight ?? 0);
    const messages = 1 + (rng.chance(s === 0 ? 0.35 : 0.2) ? 1 : 0);
    for (let m = 0; m < messages; m++) {
      if (m > 0 || s > 0) w.wait(5 * SEC, 2 * MIN);
      w.userMessage(fill(s === 0 && m === 0 ? rng.pick(kind.opening) : rng.pick(kind.followUp), vars));
    }
    if (s === 0 && rng.chance(0.06)) w.emit('optin', { scope: 'marketing' });

    const sender = rng.weighted([
      ['bot', 55],
      ['agent', 35],
      ['business', 10],
    ] as const);
    if (sender === 'agent' && rng.chance(0.3)) {
      w.wait(1 * SEC, 4 * SEC);
      w.emit('handover', { to: 'agent' });
    }
    if (sender === 'bot') w.wait(1 * SEC, 5 * SEC);
    else if (sender === 'agent') w.wait(1 * MIN, 25 * MIN);
    else w.wait(5 * MIN, 90 * MIN);
    w.businessMessage(sender, fill(rng.pick(kind.replies), vars));

    if (s === 0 && rng.chance(0.25)) {
      w.wait(1 * SEC, 3 * SEC);
      w.businessMessage('bot', 'Tap below to continue');
      w.wait(10 * SEC, 2 * MIN);
      w.emit('postback', kind.button);
    }

    if (s === leaveAt) {
      w.wait(1 * MIN, 2 * HOUR);
      if (rng.chance(0.75)) {
        w.userMessage('STOP');
        w.wait(1 * SEC, 10 * SEC);
        w.emit('optout', { scope: rng.chance(0.7) ? 'marketing' : 'all' });
      }
      if (rng.chance(0.35)) {
        w.wait(1 * SEC, 5 * MIN);
        w.emit('conversation.blocked');
      }
      return w.out; // nothing more from this thread
    }

    if (leads && s === convertAt) {
      w.wait(30 * SEC, 10 * MIN);
      const email = ` ${rng.pick(FIRST)}.${rng.pick(LAST)}${rng.int(1, 99)}@${rng.pick(['Example.com', 'mail.example.org'])} `;
      const phone = rng.chance(0.3) ? { phone: `+44 7700 ${rng.int(900000, 900999)}` } : {};
      w.emit('lead.submitted', { form_id: `form_${kind.kind}_contact`, email, ...phone });
    }
    if (converts && s === convertAt) convert(w, plan, service.name, price);
  }
  return w.out;
}

function convert(w: Thread, plan: ThreadPlan, service: string, price: () => number) {
  const { rng, business } = plan;
  const currency = business.currency;
  w.wait(1 * MIN, 20 * MIN);
  if (business.kind.conversion === 'appointment') {
    const appointment_id = `apt_${plan.label}`;
    w.emit('appointment.booked', { appointment_id, service, value: price(), currency });
    w.wait(2 * SEC, 30 * SEC);
    w.businessMessage('bot', `Booked: ${service}. See you soon!`);
    if (rng.chance(0.12)) {
      w.wait(2 * HOUR, 2 * DAY);
      w.userMessage('Sorry, I need to cancel my appointment');
      w.wait(5 * SEC, 2 * MIN);
      w.emit('appointment.cancelled', { appointment_id });
    }
    return;
  }
  const orders = rng.chance(0.12) ? 2 : 1;
  for (let i = 1; i <= orders; i++) {
    if (i > 1) w.wait(1 * DAY, 4 * DAY);
    let value = 0;
    const items = rng.int(1, 3);
    for (let k = 0; k < items; k++) value += price();
    w.emit('order.placed', { order_id: `ord_${plan.label}_${i}`, value: money(value), currency, items });
    w.wait(2 * SEC, 30 * SEC);
    w.businessMessage('bot', 'Thanks for your order! We will let you know when it ships.');
  }
}
