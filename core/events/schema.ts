import { z } from 'zod';

// The canonical event v1 (DESIGN.md). Inputs are validated here; normalize.ts turns them into
// the stored form.

export const CHANNELS = ['messenger', 'whatsapp', 'instagram', 'sms', 'webchat'] as const;
export const channelSchema = z.enum(CHANNELS);
export type Channel = z.infer<typeof channelSchema>;

export const MAX_ID_LENGTH = 128;
export const MAX_STRING_PROP_LENGTH = 512;
export const MAX_PROPS = 64;

const id = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`);
const str = z.string().max(MAX_STRING_PROP_LENGTH, `must be at most ${MAX_STRING_PROP_LENGTH} characters`);
const money = z.number().finite().min(0, 'must not be negative').max(1e12);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lower-case hex SHA-256');
const scalar = z.union([str, z.number().finite(), z.boolean(), z.null()]);
const extra = z.union([scalar, z.array(scalar).max(64)]);

// Known props per type; other scalar props are kept as they are.
const propShapes = {
  'message.received': {
    text: z.string().max(65_536).optional(), // reduced at ingest, never stored
    text_length: z.number().int().min(0).optional(),
    keywords: z.array(str).max(64).optional(),
    has_attachment: z.boolean().optional(),
  },
  'message.sent': {
    text: z.string().max(65_536).optional(),
    text_length: z.number().int().min(0).optional(),
    sender: z.enum(['bot', 'agent', 'business']).optional(),
  },
  'message.delivered': { watermark: z.number().finite().optional() },
  'message.read': { watermark: z.number().finite().optional() },
  referral: {
    source: z.enum(['ad', 'shortlink', 'other']).optional(),
    ref: str.optional(),
    ad_id: str.optional(),
  },
  postback: { payload: str.optional(), title: str.optional() },
  optin: { scope: z.enum(['marketing', 'all']).optional() },
  optout: { scope: z.enum(['marketing', 'all']).optional() },
  handover: { to: z.enum(['agent', 'bot']).optional() },
  'lead.submitted': {
    form_id: str.optional(),
    email: z.string().max(320).optional(), // hashed at ingest, never stored
    phone: z.string().max(64).optional(),
    email_sha256: sha256.optional(),
    phone_sha256: sha256.optional(),
    value: money.optional(),
  },
  'appointment.booked': {
    appointment_id: str.optional(),
    service: str.optional(),
    value: money.optional(),
    currency: str.optional(),
  },
  'appointment.cancelled': { appointment_id: str.optional() },
  'order.placed': { order_id: str.optional(), value: money, currency: str.optional() },
  'sponsored.served': {
    decision_id: str.optional(),
    campaign_id: id,
    creative_id: str.optional(),
    price_micros: z.number().int().min(0).optional(),
  },
  'sponsored.clicked': { decision_id: str.optional(), campaign_id: id },
  'conversation.blocked': {},
} as const;

export type EventType = keyof typeof propShapes;
export const EVENT_TYPES = Object.keys(propShapes) as EventType[];
export const eventTypeSchema = z.enum(EVENT_TYPES as [EventType, ...EventType[]]);
export const CONVERSION_TYPES: EventType[] = ['lead.submitted', 'appointment.booked', 'order.placed'];

// Raw personal data may arrive on any event type; it is hashed or reduced, never kept.
const privateInputs = {
  email: z.string().max(320).optional(),
  phone: z.string().max(64).optional(),
  text: z.string().max(65_536).optional(),
};

export const propsSchemas = Object.fromEntries(
  Object.entries(propShapes).map(([type, shape]) => [
    type,
    z
      .object({ ...privateInputs, ...shape })
      .catchall(extra)
      .refine((p) => Object.keys(p).length <= MAX_PROPS, `at most ${MAX_PROPS} props`),
  ]),
) as unknown as Record<EventType, z.ZodType<Record<string, unknown>>>;

export const inputEventSchema = z.object({
  event_id: id,
  type: z.string(),
  occurred_at: z.iso.datetime({
    offset: true,
    precision: undefined,
    error: 'must be an ISO-8601 time with a zone, e.g. 2026-03-04T10:15:30.123Z',
  }),
  business_id: id,
  user_id: id,
  thread_id: id.optional(),
  channel: channelSchema,
  props: z.record(z.string(), z.unknown()).optional(),
});
export type InputEvent = z.infer<typeof inputEventSchema>;

// The stored and published form: occurred_at is UTC with millisecond precision.
export const canonicalEventSchema = z.object({
  event_id: id,
  type: eventTypeSchema,
  occurred_at: z.string(),
  business_id: id,
  user_id: id,
  thread_id: id,
  channel: channelSchema,
  props: z.record(z.string(), z.unknown()),
});
export type CanonicalEvent = z.infer<typeof canonicalEventSchema>;
