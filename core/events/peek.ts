// Reads an event's type from its JSON bytes without parsing the whole message, so a consumer can
// skip the events it does not use. Sound for JSON written with event_id first and type second (as
// every Parley producer writes canonical events); for anything else it answers undefined and the
// caller parses as usual.

const PREFIX = Buffer.from('{"event_id":"');
const TYPE_KEY = Buffer.from(',"type":"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export function peekType(buf: Buffer): string | undefined {
  if (buf.length < PREFIX.length || buf.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) !== 0)
    return undefined;
  let i = PREFIX.length;
  // Skip the event_id string, escapes included.
  for (; i < buf.length; i++) {
    const c = buf[i];
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) break;
  }
  i++;
  if (i + TYPE_KEY.length > buf.length) return undefined;
  if (buf.compare(TYPE_KEY, 0, TYPE_KEY.length, i, i + TYPE_KEY.length) !== 0) return undefined;
  const start = i + TYPE_KEY.length;
  const end = buf.indexOf(QUOTE, start);
  if (end < 0) return undefined;
  const type = buf.toString('latin1', start, end);
  // Event types are plain ASCII words; anything escaped is left to the full parser.
  return /^[a-z.]+$/.test(type) ? type : undefined;
}

/** The event's id read from its JSON bytes when it is written first and unescaped; else undefined. */
export function peekEventId(buf: Buffer): string | undefined {
  if (buf.length < PREFIX.length || buf.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) !== 0)
    return undefined;
  const end = buf.indexOf(QUOTE, PREFIX.length);
  if (end < 0) return undefined;
  // An escape, or bytes outside ASCII (whose UTF-8 may be invalid), is left to the full parser.
  for (let i = PREFIX.length; i < end; i++) if (buf[i] === BACKSLASH || buf[i] > 0x7e) return undefined;
  return buf.toString('latin1', PREFIX.length, end);
}
