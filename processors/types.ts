import type { Assignment } from '../core/bus/types.ts';
import type { EventHandler } from '../core/events/feed.ts';

/** A consumer group on the bus whose effects are stored before its offsets are committed. */
export type Processor = {
  name: string;
  groupId: string;
  topics: string[];
  maxBatchSize?: number;
  maxWaitMs?: number;
  handle: EventHandler;
  /** Told the partitions this member holds, at start and after every rebalance. */
  onAssign?: (assigned: Assignment) => void;
  /** Work to do before consuming (e.g. load state); optional. */
  init?(): Promise<void>;
  close?(): Promise<void>;
};
