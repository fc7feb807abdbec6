import type { EventMessage } from './message.ts';

// The stages of a process (sink, segments, attribution) read the same partitions in the same
// order and reach the same verdict for each copy (core/events/dedup.ts). The first stage to read a
// position records its verdict here; the others read it back by position, in the order they
// consume, instead of hashing the id and probing the memory of ids again (cache misses over tens
// of megabytes). A position a stage reaches after its slot was reused is decided as before.

/** Offsets remembered per partition: stages further apart than this decide for themselves. */
const SLOTS = 2 ** 15;
const MASK = SLOTS - 1;

class Ring {
  /** The offset each slot holds a verdict for (-1: none); exact while offsets stay under 2^53. */
  readonly offsets = new Float64Array(SLOTS).fill(-1);
  readonly first = new Uint8Array(SLOTS);
}

export class Verdicts {
  /** Per topic, each partition's ring by partition number. */
  private readonly topics = new Map<string, Ring[]>();
  private lastTopic = '';
  private last: Ring[] = [];

  private ring(m: EventMessage): Ring {
    if (m.topic !== this.lastTopic) {
      let rings = this.topics.get(m.topic);
      if (!rings) {
        rings = [];
        this.topics.set(m.topic, rings);
      }
      this.lastTopic = m.topic;
      this.last = rings;
    }
    let ring = this.last[m.partition];
    if (!ring) {
      ring = new Ring();
      this.last[m.partition] = ring;
    }
    return ring;
  }

  /** 1: the copy at m's position is a first copy; 0: a later one; -1: not recorded. */
  get(m: EventMessage): number {
    const ring = this.ring(m);
    const offset = Number(m.offset);
    const at = offset & MASK;
    return ring.offsets[at] === offset ? (ring.first[at] as number) : -1;
  }

  set(m: EventMessage, first: boolean) {
    const ring = this.ring(m);
    const offset = Number(m.offset);
    const at = offset & MASK;
    ring.offsets[at] = offset;
    ring.first[at] = first ? 1 : 0;
  }
}
