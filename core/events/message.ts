import type { InMessage } from '../bus/types.ts';
import { peekEventId, peekType } from './peek.ts';
import type { CanonicalEvent } from './schema.ts';

// A message of an event topic as consumers see it: the bus's record, with its event's type, id and
// whole event read from the bytes when first asked for, once. The event feed hands one such object
// per message to every consumer of the process, so the event is decoded once, not once per
// consumer; the decoded event is shared: consumers must not change it.

export class EventMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: string;
  readonly value: Buffer;
  /** Milliseconds since the epoch when the bus accepted the message. */
  readonly timestamp: number;
  readonly headers: Record<string, string>;
  /** The decoded event, or why the value is not one; undefined until first asked for. */
  private decoded: CanonicalEvent | Error | undefined;
  private typeMemo: string | null | undefined;
  private idMemo: string | null | undefined;

  /** `event`, when given, is the value as its publisher in this process held it decoded. */
  constructor(m: InMessage, event?: CanonicalEvent) {
    this.topic = m.topic;
    this.partition = m.partition;
    this.offset = m.offset;
    this.key = m.key;
    this.value = m.value;
    this.timestamp = m.timestamp;
    this.headers = m.headers;
    this.decoded = event;
    this.typeMemo = undefined;
    this.idMemo = undefined;
  }

  /** Whether the event is decoded already (by a consumer, or handed over by its publisher). */
  get isDecoded(): boolean {
    return this.decoded !== undefined && !(this.decoded instanceof Error);
  }

  /** Takes the event as its publisher in this process holds it, unless it is decoded already. */
  adopt(event: CanonicalEvent) {
    if (this.decoded === undefined) this.decoded = event;
  }

  /** The message as a canonical event; throws (every time) if the value is not JSON. */
  event(): CanonicalEvent {
    let e = this.decoded;
    if (e === undefined) {
      try {
        e = JSON.parse(this.value.toString('utf8')) as CanonicalEvent;
      } catch (err) {
        e = err as Error;
      }
      this.decoded = e;
    }
    if (e instanceof Error) throw e;
    return e;
  }

  /** The event's type, read from the bytes without a full parse when possible; undefined if it has none. */
  get type(): string | undefined {
    if (this.typeMemo === undefined) {
      const t = this.isDecoded ? this.field('type') : (peekType(this.value) ?? this.field('type'));
      this.typeMemo = t ?? null;
    }
    return this.typeMemo ?? undefined;
  }

  /** The event's id, read from the bytes without a full parse when possible; undefined if it has none. */
  get id(): string | undefined {
    if (this.idMemo === undefined) {
      const id = this.isDecoded
        ? this.field('event_id')
        : (peekEventId(this.value) ?? this.field('event_id'));
      this.idMemo = id ?? null;
    }
    return this.idMemo ?? undefined;
  }

  /** A string field of the decoded event; undefined when the value is not an object holding one. */
  private field(name: 'type' | 'event_id'): string | undefined {
    let e: unknown;
    try {
      e = this.event();
    } catch {
      return undefined;
    }
    const v = e !== null && typeof e === 'object' ? (e as Record<string, unknown>)[name] : undefined;
    return typeof v === 'string' ? v : undefined;
  }
}
