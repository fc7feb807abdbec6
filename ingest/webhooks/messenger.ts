// Messenger Platform webhooks (object "page") → canonical input events.
// References:
//   https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events
//   .../webhook-events/messages, message-echoes, message-deliveries, message-reads, messaging_postbacks,
//   messaging_referrals, messaging_optins, messaging_handovers
import type { AdapterContext, AdaptResult } from './common.ts';
import { adaptMessaging } from './meta-messaging.ts';

/** One Messenger delivery (several entries, each with messaging[] and standby[] items). */
export function adaptMessenger(body: unknown, ctx: AdapterContext): AdaptResult {
  return adaptMessaging(body, 'page', 'messenger', ctx);
}
