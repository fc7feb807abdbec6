import type { InMessage } from '../bus/types.ts';
import { peekEventId, peekType } from './peek.ts';
import type { CanonicalEvent } from './schema.ts';

// Every consumer group of a process gets the same message objects from the embedded log, so an
// event read by the segments processor, the attribution processor and the decision engine is
// parsed once, not once per consumer; an event published in this process is not parsed at all (the
// publisher's object travels with it). The parsed event is shared: readers must not change it.

const TYPE = Symbol('parley.eventType');
const EVENT = Symbol('parley.event');
const ID = Symbol('parley.eventId');

type Memo = InMessage & { [TYPE]?: string | null; [EVENT]?: CanonicalEvent | Error; [ID]?: string | null };

/** The event's type, read from its bytes without a full parse when possible; undefined if unreadable. */
export function typeOf(m: InMessage): string | undefined {
  const memo = m as Memo;
  let t = memo[TYPE];
  if (t === undefined) {
    const d = m.decoded as CanonicalEvent | undefined;
    t = d !== undefined ? (typeof d?.type === 'string' ? d.type : null) : (peekType(m.value) ?? null);
    if (t === null) {
      try {
        const e = eventOf(m);
        t = e !== null && typeof e === 'object' && typeof e.type === 'string' ? e.type : null;
      } catch {
        t = null;
      }
    }
    memo[TYPE] = t;
  }
  return t ?? undefined;
}

/** The message as a canonical event; throws (every time) if it is not JSON. */
export function eventOf(m: InMessage): CanonicalEvent {
  const memo = m as Memo;
  let e = memo[EVENT];
  if (e === undefined) {
    if (m.decoded !== undefined) e = m.decoded as CanonicalEvent;
    else
      try {
        e = JSON.parse(m.value.toString('utf8')) as CanonicalEvent;
      } catch (err) {
        e = err as Error;
      }
    memo[EVENT] = e;
  }
  if (e instanceof Error) throw e;
  return e;
}

/** The event's id, read from its bytes without a full parse when possible; undefined if it has none. */
export function idOf(m: InMessage): string | undefined {
  const memo = m as Memo;
  let id = memo[ID];
  if (id === undefined) {
    const d = m.decoded as CanonicalEvent | undefined;
    id = d !== undefined ? d?.event_id : peekEventId(m.value);
    if (id === undefined) {
      try {
        const e = eventOf(m) as Partial<CanonicalEvent> | null;
        id = e !== null && typeof e === 'object' ? e.event_id : undefined;
      } catch {
        id = undefined;
      }
    }
    memo[ID] = typeof id === 'string' ? id : null;
  }
  return memo[ID] ?? undefined;
}
