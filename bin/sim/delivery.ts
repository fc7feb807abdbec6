import { createHmac } from 'node:crypto';
import { whatsappDelivery } from '../../ingest/webhooks/examples.ts';
import { SimulateError } from './sender.ts';

// How the simulated ad server confirms that an offer was delivered, as a real one would: on
// Messenger and WhatsApp the platform tells Parley itself (a signed message echo carrying the tag
// in `metadata`, signed `sent`/`delivered` statuses carrying it in `biz_opaque_callback_data`);
// elsewhere the ad server confirms through POST /v1/impressions, in batches.

export type DeliveryTarget = { url: string; key: string; metaAppSecret?: string };

let mids = 0;

/** The webhook delivery Meta would send once the message with this tag went out. */
export function platformDelivery(channel: string, tag: string, nowMs: number): unknown | undefined {
  const id = `${nowMs.toString(36)}${(mids++).toString(36)}`;
  if (channel === 'messenger' || channel === 'instagram')
    return {
      object: channel === 'messenger' ? 'page' : 'instagram',
      entry: [
        {
          id: '104512345678901',
          time: nowMs,
          messaging: [
            {
              sender: { id: '104512345678901' },
              recipient: { id: `psid-${id}` },
              timestamp: nowMs,
              message: {
                is_echo: true,
                app_id: 1517776481860111,
                metadata: tag,
                mid: `mid.${id}`,
                text: '…',
              },
            },
          ],
        },
      ],
    };
  if (channel === 'whatsapp')
    return whatsappDelivery({
      statuses: ['sent', 'delivered'].map((status) => ({
        id: `wamid.${id}`,
        status,
        timestamp: String(Math.floor(nowMs / 1000)),
        recipient_id: '16505550000',
        biz_opaque_callback_data: tag,
      })),
    });
  return undefined;
}

/** Confirms deliveries: through signed webhooks where the platform has them, else in batches. */
export function createDeliveries(target: DeliveryTarget) {
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const tokens = batch;
    batch = [];
    const res = await fetch(`${target.url}/v1/impressions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${target.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tokens }),
    });
    const body = (await res.json()) as { accepted?: number };
    if (res.status !== 202 || body.accepted !== tokens.length)
      throw new SimulateError(
        `POST /v1/impressions answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`,
      );
  };
  return {
    flush,
    /** Returns how the delivery was confirmed. */
    async deliver(channel: string, tag: string): Promise<'webhook' | 'batch'> {
      const delivery = target.metaAppSecret ? platformDelivery(channel, tag, Date.now()) : undefined;
      if (delivery && target.metaAppSecret) {
        const raw = JSON.stringify(delivery);
        const platform = channel === 'whatsapp' ? 'whatsapp' : channel;
        const res = await fetch(`${target.url}/v1/webhooks/${platform}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-hub-signature-256': `sha256=${createHmac('sha256', target.metaAppSecret).update(raw).digest('hex')}`,
          },
          body: raw,
        });
        if (res.status === 200) return 'webhook';
        // WhatsApp deliveries need PARLEY_HASH_SECRET on the server; without it, confirm in a batch.
        if (res.status !== 503) throw new SimulateError(`the ${platform} webhook answered ${res.status}`);
      }
      batch.push(tag);
      if (batch.length >= 100) await flush();
      return 'batch';
    },
  };
}
