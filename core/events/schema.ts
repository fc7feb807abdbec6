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
const scalar = z.union([str, z.number().finite(), z.boolean(), z.null()]);
const extra = z.union([scalar, z.array(scalar).max(64)]);

// Each prop has a kind: a zod schema (which gives the error messages) and a fast check that
// accepts only values the schema accepts. Ingest tries the fast checks first and falls back to
// zod for anything they do not accept, so the two can differ in speed, never in result.
type Kind = { zod: z.ZodType; fast: (v: unknown) => boolean; required?: boolean };
const isStr =
  (max: number, min = 0) =>
  (v: unknown) =>
    typeof v === 'string' && v.length >= min && v.length <= max;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const enumKind = <T extends string>(values: readonly [T, ...T[]]): Kind => ({
  zod: z.enum(values),
  fast: (v) => values.includes(v as T),
});
const K = {
  id: { zod: id, fast: isStr(MAX_ID_LENGTH, 1) },
  str: { zod: str, fast: isStr(MAX_STRING_PROP_LENGTH) },
  text: { zod: z.string().max(65_536), fast: isStr(65_536) }, // reduced at ingest, never stored
  email: { zod: z.string().max(320), fast: isStr(320) }, // hashed at ingest, never stored
  phone: { zod: z.string().max(64), fast: isStr(64) },
  count: { zod: z.number().int().min(0), fast: (v) => Number.isSafeInteger(v) && (v as number) >= 0 },
  num: { zod: z.number().finite(), fast: isNum },
  bool: { zod: z.boolean(), fast: (v) => typeof v === 'boolean' },
  money: {
    zod: z.number().finite().min(0, 'must not be negative').max(1e12),
    fast: (v) => isNum(v) && v >= 0 && v <= 1e12,
  },
  sha256: {
    zod: z.string().regex(/^[0-9a-f]{64}$/, 'must be a lower-case hex SHA-256'),
    fast: (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v),
  },
  words: {
    zod: z.array(str).max(64),
    fast: (v) => Array.isArray(v) && v.length <= 64 && v.every(isStr(MAX_STRING_PROP_LENGTH)),
  },
} satisfies Record<string, Kind>;
const req = (k: Kind): Kind => ({ ...k, required: true });

type PropSpec = Record<string, Kind>;

// Known props per type; other scalar props are kept as they are.
const propSpecs = {
  'message.received': { text: K.text, text_length: K.count, keywords: K.words, has_attachment: K.bool },
  'message.sent': { text: K.text, text_length: K.count, sender: enumKind(['bot', 'agent', 'business']) },
  'message.delivered': { watermark: K.num },
  'message.read': { watermark: K.num },
  referral: { source: enumKind(['ad', 'shortlink', 'other']), ref: K.str, ad_id: K.str },
  postback: { payload: K.str, title: K.str },
  optin: { scope: enumKind(['marketing', 'all']) },
  optout: { scope: enumKind(['marketing', 'all']) },
  handover: { to: enumKind(['agent', 'bot']) },
  'lead.submitted': { form_id: K.str, email_sha256: K.sha256, phone_sha256: K.sha256, value: K.money },
  'appointment.booked': { appointment_id: K.str, service: K.str, value: K.money, currency: K.str },
  'appointment.cancelled': { appointment_id: K.str },
  'order.placed': { order_id: K.str, value: req(K.money), currency: K.str },
  'sponsored.served': {
    decision_id: K.str,
    campaign_id: req(K.id),
    creative_id: K.str,
    price_micros: K.count,
  },
  'sponsored.clicked': { decision_id: K.str, campaign_id: req(K.id) },
  // The first would-be offer of a campaign with a holdout, for both groups (docs/reports.md, lift).
  'sponsored.withheld': {
    decision_id: K.str,
    campaign_id: req(K.id),
    creative_id: K.str,
    price_micros: K.count,
    group: enumKind(['control', 'treatment']),
  },
  'conversation.blocked': {},
} satisfies Record<string, PropSpec>;

export type EventType = keyof typeof propSpecs;
export const EVENT_TYPES = Object.keys(propSpecs) as EventType[];
export const eventTypeSchema = z.enum(EVENT_TYPES as [EventType, ...EventType[]]);
export const CONVERSION_TYPES: EventType[] = ['lead.submitted', 'appointment.booked', 'order.placed'];

// Raw personal data may arrive on any event type; it is hashed or reduced, never kept.
const privateInputs: PropSpec = { email: K.email, phone: K.phone, text: K.text };
const specFor = (type: EventType): PropSpec => ({ ...privateInputs, ...propSpecs[type] });

export const propsSchemas = Object.fromEntries(
  EVENT_TYPES.map((type) => [
    type,
    z
      .object(
        Object.fromEntries(
          Object.entries(specFor(type)).map(([k, v]) => [k, v.required ? v.zod : v.zod.optional()]),
        ),
      )
      .catchall(extra)
      .refine((p) => Object.keys(p).length <= MAX_PROPS, `at most ${MAX_PROPS} props`),
  ]),
) as unknown as Record<EventType, z.ZodType<Record<string, unknown>>>;

const isExtra = (v: unknown) =>
  v === null ||
  typeof v === 'boolean' ||
  isNum(v) ||
  (typeof v === 'string' && v.length <= MAX_STRING_PROP_LENGTH);

/** Fast checks of props: true only when the type's zod schema accepts them as they are. */
export const propsFastChecks = Object.fromEntries(
  EVENT_TYPES.map((type) => {
    const spec = specFor(type);
    const required = Object.keys(spec).filter((k) => spec[k].required);
    return [
      type,
      (p: Record<string, unknown>) => {
        let n = 0;
        for (const k in p) {
          if (!Object.hasOwn(p, k)) return false;
          n++;
          const v = p[k];
          const kind = Object.hasOwn(spec, k) ? spec[k] : undefined;
          if (kind ? v !== undefined && !kind.fast(v) : !isExtra(v)) return false;
        }
        return n <= MAX_PROPS && required.every((k) => p[k] !== undefined);
      },
    ];
  }),
) as Record<EventType, (p: Record<string, unknown>) => boolean>;

export const occurredAtSchema = z.iso.datetime({
  offset: true,
  error: 'must be an ISO-8601 time with a zone, e.g. 2026-03-04T10:15:30.123Z',
});

export const inputEventSchema = z.object({
  event_id: id,
  type: z.string(),
  occurred_at: occurredAtSchema,
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
