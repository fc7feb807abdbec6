import type { Channel } from '../../core/events/schema.ts';

// The kinds of business the simulator knows: what they sell, what customers write to them, on
// which channels, and how often a conversation turns into a conversion.

export type Service = { name: string; min: number; max: number };

export type BusinessKind = {
  kind: 'barber' | 'dentist' | 'shop' | 'clinic';
  /** Appointment businesses book services; shops take orders. */
  conversion: 'appointment' | 'order';
  services: Service[];
  channels: (readonly [Channel, number])[];
  /** Chance that a conversation ends in a booking or an order. */
  convertRate: number;
  /** Chance that a conversation includes a contact form (lead). */
  leadRate: number;
  /** What customers write: first messages, then follow-ups ({service} is filled in). */
  opening: string[];
  followUp: string[];
  replies: string[];
  button: { payload: string; title: string };
};

export const KINDS: BusinessKind[] = [
  {
    kind: 'barber',
    conversion: 'appointment',
    services: [
      { name: 'haircut', min: 18, max: 35 },
      { name: 'beard trim', min: 10, max: 20 },
      { name: 'haircut and beard', min: 28, max: 50 },
      { name: 'kids haircut', min: 12, max: 22 },
    ],
    channels: [
      ['whatsapp', 50],
      ['instagram', 30],
      ['messenger', 15],
      ['sms', 5],
    ],
    convertRate: 0.3,
    leadRate: 0.04,
    opening: [
      'Hi! Can I get a haircut tomorrow afternoon?',
      'Hey, do you have an appointment free on Saturday?',
      "What's the price for a {service}?",
      'Hello, are you open on Sunday? I need a haircut',
      'Can I book a {service} for my son?',
    ],
    followUp: [
      'Great, 5pm works',
      'How long does a {service} take?',
      'Is there parking nearby?',
      'Thanks! See you then',
      'Can I pay by card?',
    ],
    replies: [
      'Sure, we have 4:30 or 5pm free',
      'A {service} is {price}',
      'Yes, see you tomorrow!',
      'We are open 9 to 7 every day',
    ],
    button: { payload: 'BOOK_NOW', title: 'Book now' },
  },
  {
    kind: 'dentist',
    conversion: 'appointment',
    services: [
      { name: 'cleaning', min: 60, max: 140 },
      { name: 'check-up', min: 45, max: 90 },
      { name: 'whitening', min: 200, max: 450 },
      { name: 'filling', min: 90, max: 220 },
    ],
    channels: [
      ['sms', 35],
      ['whatsapp', 30],
      ['webchat', 25],
      ['messenger', 10],
    ],
    convertRate: 0.22,
    leadRate: 0.14,
    opening: [
      'Hello, I need a cleaning appointment next week',
      'How much is teeth whitening?',
      'I have a toothache, can you see me today?',
      'Is a check-up covered by my insurance?',
      "What's the price of a {service}?",
    ],
    followUp: [
      'Do you have anything earlier?',
      'Tuesday morning is fine',
      'Does a {service} hurt?',
      'Do I need to bring anything?',
    ],
    replies: [
      'We can see you Tuesday at 9:00',
      'A {service} starts at {price}',
      'Please arrive 10 minutes early',
      'Yes, we accept most insurers',
    ],
    button: { payload: 'BOOK_APPOINTMENT', title: 'Book an appointment' },
  },
  {
    kind: 'shop',
    conversion: 'order',
    services: [
      { name: 'sneakers', min: 45, max: 160 },
      { name: 'jacket', min: 60, max: 240 },
      { name: 't-shirt', min: 12, max: 40 },
      { name: 'backpack', min: 30, max: 110 },
    ],
    channels: [
      ['instagram', 35],
      ['messenger', 25],
      ['webchat', 25],
      ['whatsapp', 15],
    ],
    convertRate: 0.18,
    leadRate: 0.08,
    opening: [
      'Is this {service} still in stock?',
      "What's the price of the {service} in size M?",
      'Where is my order? It was due yesterday',
      'Do you ship to Lisbon? How long is delivery?',
      "I'd like to order two of these",
    ],
    followUp: [
      'Can I return it if it does not fit?',
      'Is there a discount code?',
      'OK I will place the order now',
      'Do you have it in black?',
    ],
    replies: [
      'Yes, it is in stock',
      'The {service} is {price}, free delivery over 50',
      'Your order ships today',
      'Returns are free within 30 days',
    ],
    button: { payload: 'SHOP_NOW', title: 'Shop now' },
  },
  {
    kind: 'clinic',
    conversion: 'appointment',
    services: [
      { name: 'consultation', min: 50, max: 120 },
      { name: 'physiotherapy', min: 40, max: 90 },
      { name: 'blood test', min: 25, max: 70 },
      { name: 'vaccination', min: 20, max: 60 },
    ],
    channels: [
      ['webchat', 35],
      ['whatsapp', 30],
      ['sms', 25],
      ['messenger', 10],
    ],
    convertRate: 0.2,
    leadRate: 0.16,
    opening: [
      "I'd like to book an appointment for physiotherapy",
      "What's the price of a consultation?",
      'Can I get a blood test this week?',
      'Do you do vaccinations for travel?',
      'Is a {service} available on Friday?',
    ],
    followUp: [
      'Do I need a referral?',
      'Friday afternoon please',
      'How long does a {service} take?',
      'Can I cancel if I get better?',
    ],
    replies: [
      'We have Friday at 14:00',
      'A {service} is {price}',
      'No referral needed',
      'Please bring your ID card',
    ],
    button: { payload: 'BOOK_APPOINTMENT', title: 'Book an appointment' },
  },
];

export const CURRENCIES: (readonly [string, number])[] = [
  ['USD', 45],
  ['EUR', 30],
  ['GBP', 15],
  ['BRL', 10],
];

/** Words worth matching in message text; run Parley with PARLEY_KEYWORDS set to these to see them. */
export const SIM_KEYWORDS = [
  'haircut',
  'beard',
  'appointment',
  'book',
  'price',
  'cleaning',
  'whitening',
  'toothache',
  'insurance',
  'cancel',
  'order',
  'stock',
  'delivery',
  'discount',
  'return',
  'consultation',
  'physiotherapy',
  'stop',
];

export const fill = (template: string, vars: { service: string; price: string }) =>
  template.replaceAll('{service}', vars.service).replaceAll('{price}', vars.price);
