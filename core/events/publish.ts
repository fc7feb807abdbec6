import type { Bus } from '../bus/types.ts';
import { isParleyError, ParleyError } from '../errors.ts';
import type { CanonicalEvent } from './schema.ts';

/**
 * Publishes canonical events (keyed by user_id, so one user's events stay in order). Resolves once
 * the bus holds them durably; a bus failure becomes a retriable 503.
 */
export async function publishCanonical(bus: Bus, topic: string, events: CanonicalEvent[]): Promise<void> {
  if (events.length === 0) return;
  try {
    await bus.publish(
      topic,
      events.map((e) => ({ key: e.user_id, value: JSON.stringify(e), decoded: e })),
    );
  } catch (err) {
    if (isParleyError(err) && err.code === 'PARLEY_ERR_BUS_UNAVAILABLE') throw err;
    throw new ParleyError('PARLEY_ERR_BUS_UNAVAILABLE', undefined, { cause: err });
  }
}
