import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeEvent } from './normalize.ts';
import { CHANNELS, EVENT_TYPES } from './schema.ts';

// The fast validation path must give exactly the zod path's answer, for valid and invalid input.

const now = Date.parse('2026-03-05T00:00:00Z');
const ctx = { now, maxFutureMs: 300_000, keywords: ['haircut'] };

const str = (max: number) =>
  fc.oneof(fc.string({ maxLength: 8 }), fc.string({ minLength: max - 2, maxLength: max + 2 }));
const id = fc.oneof(
  { weight: 8, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
  { weight: 1, arbitrary: str(128) },
  { weight: 1, arbitrary: fc.integer() },
);
const time = fc.oneof(
  fc
    .date({ min: new Date('1999-06-01'), max: new Date('2026-03-05T01:00:00Z'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc.constantFrom(
    '2026-03-04T10:15:30+01:00',
    '2026-03-04T10:15:30.5-05:30',
    '2026-13-04T10:15:30Z',
    '2026-02-30T10:00:00Z',
    '2026-03-04T10:15:30',
    '2026-03-04 10:15:30Z',
    'soon',
    '2026-03-04T24:00:00Z',
    '2024-02-29T10:15:30.000Z',
    '2025-02-29T10:15:30.000Z',
    '2026-04-31T10:15:30.000Z',
    '2026-03-04T24:00:00.000Z',
    '2026-03-04T23:59:60.000Z',
  ),
);
const scalar = fc.oneof(
  fc.string({ maxLength: 6 }),
  str(512),
  fc.integer({ min: -5, max: 5 }),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
);
const propValue = fc.oneof(
  scalar,
  fc.array(fc.oneof(fc.string({ maxLength: 4 }), fc.integer()), { maxLength: 3 }),
  fc.constant({ nested: true }),
  fc.constantFrom('ad', 'bot', 'agent', 'marketing', 'a'.repeat(64), 'f'.repeat(64)),
  fc.double({ min: -1, max: 2e12, noNaN: true }),
);
const propKey = fc.constantFrom(
  'text',
  'email',
  'phone',
  'text_length',
  'keywords',
  'has_attachment',
  'sender',
  'watermark',
  'source',
  'ref',
  'ad_id',
  'payload',
  'title',
  'scope',
  'to',
  'form_id',
  'email_sha256',
  'phone_sha256',
  'value',
  'appointment_id',
  'service',
  'currency',
  'order_id',
  'decision_id',
  'campaign_id',
  'creative_id',
  'price_micros',
  'custom',
  'hasOwnProperty',
);
const event = fc.record(
  {
    event_id: id,
    type: fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...EVENT_TYPES) },
      { weight: 1, arbitrary: fc.constantFrom('nope', 'Order.Placed') },
    ),
    occurred_at: time,
    business_id: id,
    user_id: id,
    thread_id: id,
    channel: fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...CHANNELS) },
      { weight: 1, arbitrary: fc.constant('fax') },
    ),
    props: fc.oneof(
      { weight: 9, arbitrary: fc.dictionary(propKey, propValue, { maxKeys: 5 }) },
      { weight: 1, arbitrary: fc.constant([]) },
    ),
  },
  { requiredKeys: ['event_id', 'type', 'occurred_at', 'channel'] },
);
// An unknown top-level key now and then (refused by both paths).
const input = fc.oneof(
  { weight: 9, arbitrary: event },
  { weight: 1, arbitrary: fc.tuple(event, fc.string()).map(([e, extra]) => ({ ...e, extra })) },
);

describe('fast validation path', () => {
  it('agrees with the zod path on every input', () => {
    let accepted = 0;
    fc.assert(
      fc.property(input, (e) => {
        const fast = normalizeEvent(e, ctx);
        const slow = normalizeEvent(e, ctx, { fast: false });
        expect(fast.ok).toBe(slow.ok);
        if (fast.ok && slow.ok) {
          accepted++;
          expect(fast.value).toEqual(slow.value);
        }
      }),
      { numRuns: 20_000 },
    );
    expect(accepted).toBeGreaterThan(1000); // the property saw plenty of valid events too
  });
});
