import type { Platform } from './common.ts';

// One delivery per platform, in the platform's own format (Meta's webhook references; ids, times
// and texts illustrative, as in ./fixtures): the OpenAPI document shows them as the request body
// of each webhook route. The routes read the raw bytes (the signature covers them), so these
// document the body and validate nothing.

const meta = (object: string, entryId: string) => ({
  type: 'object',
  required: ['object', 'entry'],
  properties: {
    object: { type: 'string', enum: [object] },
    entry: {
      type: 'array',
      items: { type: 'object', properties: { id: { type: 'string', example: entryId } } },
    },
  },
});

const messaging = (object: string, pageId: string, userId: string, text: string) => ({
  object,
  entry: [
    {
      id: pageId,
      time: 1764000005000,
      messaging: [
        {
          sender: { id: userId },
          recipient: { id: pageId },
          timestamp: 1764000001000,
          message: { mid: 'm_AG5Hz2Uq7tuwNEhXfYYKj8mJEM', text },
        },
      ],
    },
  ],
});

/**
 * A WhatsApp Cloud API delivery of one change (field "messages") of a business's phone number:
 * `value` holds its messages, contacts or statuses beside the product and the number's metadata.
 */
export const whatsappDelivery = (value: Record<string, unknown>) => ({
  object: 'whatsapp_business_account',
  entry: [
    {
      id: '102290129340398',
      changes: [
        {
          field: 'messages',
          value: {
            messaging_product: 'whatsapp',
            metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
            ...value,
          },
        },
      ],
    },
  ],
});

export const DELIVERY_BODIES: Record<Platform, Record<string, unknown>> = {
  messenger: {
    ...meta('page', '104512345678901'),
    description:
      'A Messenger webhook delivery (object "page"): messages, postbacks, referrals, receipts, echoes.',
    examples: [messaging('page', '104512345678901', '7012345678901234', 'Can I book a haircut for Friday?')],
  },
  instagram: {
    ...meta('instagram', '17841405822304914'),
    description: 'An Instagram messaging webhook delivery (object "instagram").',
    examples: [messaging('instagram', '17841405822304914', '1140112233445566', 'Do you ship to Lisbon?')],
  },
  whatsapp: {
    ...meta('whatsapp_business_account', '102290129340398'),
    description:
      'A WhatsApp Cloud API webhook delivery (object "whatsapp_business_account"): messages and statuses under entry[].changes[].value.',
    examples: [
      whatsappDelivery({
        contacts: [{ profile: { name: 'Sheena Nelson' }, wa_id: '16505551234' }],
        messages: [
          {
            from: '16505551234',
            id: 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
            timestamp: '1764001101',
            type: 'text',
            text: { body: 'Is there a slot on Saturday?' },
          },
        ],
      }),
    ],
  },
};
