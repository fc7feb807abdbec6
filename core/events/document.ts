import { z } from 'zod';
import { strictObject } from '../input.ts';
import {
  EVENT_TYPES,
  type EventType,
  MAX_ID_LENGTH,
  MAX_PROPS,
  PROP_NAME,
  channelSchema,
  occurredAtSchema,
  propsSchemas,
} from './schema.ts';

// The canonical event as the OpenAPI document shows it: one shape per type, with that type's
// props, from the schemas ingest checks each event with (schema.ts, normalize.ts). Ingest reads a
// request's events one by one (an invalid one is rejected with its index, the others accepted),
// so this documents the body rather than validating it.

const id = (what: string) =>
  z
    .string()
    .min(1)
    .max(MAX_ID_LENGTH)
    .regex(/\S/)
    .describe(`${what} (1 to ${MAX_ID_LENGTH} characters of valid Unicode, not only spaces)`);

function eventOf(type: EventType) {
  const props = propsSchemas[type].meta({
    propertyNames: { pattern: PROP_NAME.source },
    maxProperties: MAX_PROPS,
    description: `Props of ${type}: those named here have the types shown; any other is a string (at most 512 characters), a number, true/false, null or a list of those. Names are 1 to 64 letters, digits, _ or -. Raw text, email and phone are reduced or hashed at ingest, never stored.`,
  });
  // A type with props it cannot do without needs props.
  const required = !propsSchemas[type].safeParse({}).success;
  return strictObject({
    event_id: id('Your id for the event; the same event_id sent again is the same event'),
    type: z.literal(type),
    occurred_at: occurredAtSchema.describe(
      'ISO-8601 with a zone, from 2000-01-01 on and at most PARLEY_MAX_FUTURE_SECONDS (default 300) ahead of the server’s clock',
    ),
    business_id: id('The business'),
    user_id: id('The user'),
    thread_id: id(
      'The conversation; default t_<business_id>_<user_id>, which must then be at most 128 characters',
    ).optional(),
    channel: channelSchema,
    props: required ? props : props.optional(),
  });
}

export const documentedEventSchema = z
  .discriminatedUnion(
    'type',
    EVENT_TYPES.map(eventOf) as unknown as [ReturnType<typeof eventOf>, ...ReturnType<typeof eventOf>[]],
  )
  .meta({ id: 'InputEvent', description: 'A canonical event as a client sends it' });
