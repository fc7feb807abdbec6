// Instagram messaging webhooks (object "instagram") → canonical input events.
// Reference: https://developers.facebook.com/documentation/business-messaging/instagram-messaging/webhooks
// Differences from Messenger, handled in meta-messaging.ts: ids are Instagram-scoped (IGSID for the
// person, the professional account id in entry.id), echoes arrive inside the messages field
// (is_echo), reads (messaging_seen) carry the mid of the message read instead of a watermark,
// and deleted messages arrive as is_deleted.
import type { AdapterContext, AdaptResult } from './common.ts';
import { adaptMessaging } from './meta-messaging.ts';

export function adaptInstagram(body: unknown, ctx: AdapterContext): AdaptResult {
  return adaptMessaging(body, 'instagram', 'instagram', ctx);
}
