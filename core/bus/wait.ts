import type { Logger } from '../log.ts';
import type { Bus } from './types.ts';

/** Per partition, an offset: everything before it is done. */
export type Offsets = Map<number, bigint>;

/** The offsets a consumer group has committed on a topic, by partition. */
export async function committedOffsets(bus: Bus, group: string, topic: string): Promise<Offsets> {
  return new Map((await bus.lag(group, topic)).map((l) => [l.partition, l.committed]));
}

/**
 * Waits until `stored` (what the sink has stored) reaches, on every partition, at least `mine`
 * (what a processor has committed): everything the processor consumed before is then in the
 * store. Gives up (with a warning) after timeoutMs rather than never starting.
 */
export async function waitForStored(
  mine: () => Promise<Offsets>,
  stored: () => Promise<Offsets>,
  opts: { timeoutMs: number; log: Logger },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const [m, s] = await Promise.all([mine(), stored()]);
    const behind = [...m].filter(([p, o]) => (s.get(p) ?? -1n) < o).map(([p]) => p);
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      opts.log.warn({ partitions: behind }, 'the event store is behind this processor; loading state anyway');
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
