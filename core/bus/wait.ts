import type { Logger } from '../log.ts';
import type { Bus } from './types.ts';

/**
 * Waits until the group `storedBy` (the sink) has committed, on every partition, at least as far
 * as `group` has: everything `group` consumed before is then in the store. Gives up (with a
 * warning) after timeoutMs rather than never starting.
 */
export async function waitForGroup(
  bus: Bus,
  topic: string,
  opts: { group: string; storedBy: string; timeoutMs: number; log: Logger },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const [mine, stored] = await Promise.all([bus.lag(opts.group, topic), bus.lag(opts.storedBy, topic)]);
    const behind = mine.filter(
      (m) => (stored.find((s) => s.partition === m.partition)?.committed ?? -1n) < m.committed,
    );
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      opts.log.warn(
        { group: opts.storedBy, partitions: behind.map((b) => b.partition) },
        'the event store is behind this processor; loading state anyway',
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
