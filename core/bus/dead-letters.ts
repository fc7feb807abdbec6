import { createHash } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Bus, InMessage } from './types.ts';

// Records a processor could not store go to the dead-letter topic with the reason and where they
// came from, so nothing acknowledged disappears silently and nothing blocks the records after it.

export type DeadLetter = { error: string; input: unknown; partition?: number; offset?: bigint };

export type DeadLetters = (stage: string, letters: DeadLetter[]) => Promise<void>;

/** What a bus message holds, as a dead letter can keep it: its JSON, or its length and hash. */
export function messageInput(m: InMessage): unknown {
  try {
    return JSON.parse(m.value.toString('utf8'));
  } catch {
    return { raw_length: m.value.length, raw_sha256: createHash('sha256').update(m.value).digest('hex') };
  }
}

export function createDeadLetters(deps: {
  bus: Bus;
  topic: string;
  logger: Logger;
  onSent?: (stage: string, n: number) => void;
}): DeadLetters {
  return async (stage, letters) => {
    if (!letters.length) return;
    const at = new Date().toISOString();
    await deps.bus.publish(
      deps.topic,
      letters.map((l) => ({
        key: stage,
        value: JSON.stringify({
          source: stage,
          error: l.error,
          partition: l.partition,
          offset: l.offset?.toString(),
          input: l.input,
          rejected_at: at,
        }),
      })),
    );
    for (const l of letters)
      deps.logger.error(
        { stage, err: l.error, partition: l.partition, offset: l.offset?.toString() },
        'the store refused a record; sent to the dead-letter topic',
      );
    deps.onSent?.(stage, letters.length);
  };
}
