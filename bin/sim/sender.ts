// Sends events to POST /v1/events in batches, several requests at a time, optionally at a capped
// rate. A 503 (or a dropped connection) is retried with backoff, as ingest asks; a refused key
// stops everything with a message saying what to do.

export type SendOptions = {
  /** Parley's base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  key: string;
  batchSize?: number;
  concurrency?: number;
  /** Most events per second; unlimited when absent. */
  rate?: number;
  /** Attempts per batch before giving up on a retriable failure. */
  maxAttempts?: number;
  /** First backoff; doubles per attempt (with jitter), capped at 10 s. */
  backoffMs?: number;
  /** Called after every answered batch. */
  onProgress?: (p: SendProgress) => void;
};

export type SendProgress = { sent: number; accepted: number; rejected: number; retries: number };
export type SendResult = SendProgress & { requests: number; samples: { event_id: string; error: string }[] };

export class SimulateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SimulateError';
  }
}

type Answer = { accepted: number; rejected: { index: number; error: string }[] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function* batches<T>(items: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = [];
  for (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** A token bucket over events: each batch waits until the rate allows all of it. */
function createLimiter(rate?: number) {
  let next = 0;
  return async (n: number) => {
    if (!rate) return;
    const now = performance.now();
    const at = Math.max(next, now);
    next = at + (n / rate) * 1000;
    if (at > now) await sleep(at - now);
  };
}

export async function sendEvents<T extends { event_id: string }>(
  events: Iterable<T>,
  opts: SendOptions,
): Promise<SendResult> {
  const endpoint = new URL('/v1/events', opts.url).toString();
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  // With a low rate cap, smaller batches keep the flow smooth (about five requests a second).
  const batchSize = Math.max(
    1,
    Math.min(opts.batchSize ?? 1000, opts.rate ? Math.ceil(opts.rate / 5) : Number.POSITIVE_INFINITY),
  );
  const maxAttempts = opts.maxAttempts ?? 10;
  const backoffMs = opts.backoffMs ?? 250;
  const limit = createLimiter(opts.rate);
  const source = batches(events, batchSize);
  const abort = new AbortController();
  const result: SendResult = { sent: 0, accepted: 0, rejected: 0, retries: 0, requests: 0, samples: [] };

  const post = async (batch: T[]): Promise<Answer> => {
    const body = JSON.stringify(batch);
    for (let attempt = 1; ; attempt++) {
      let retryAfterMs: number | undefined;
      let why: string;
      try {
        result.requests++;
        const res = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.key}` },
          body,
          signal: abort.signal,
        });
        const text = await res.text();
        if (res.status === 202) return JSON.parse(text) as Answer;
        const detail = describe(res.status, text);
        if (res.status === 401 || res.status === 403) {
          throw new SimulateError(
            `Parley refused the API key (${detail}). Pass a key with role ingest or admin: --key KEY, or set PARLEY_API_KEY.`,
          );
        }
        if (res.status !== 503 && res.status !== 502 && res.status !== 504) {
          throw new SimulateError(`POST ${endpoint} failed: ${detail}`);
        }
        const ra = Number(res.headers.get('retry-after'));
        if (ra > 0) retryAfterMs = ra * 1000;
        why = detail;
      } catch (err) {
        if (err instanceof SimulateError || abort.signal.aborted) throw err;
        // fetch failed before an answer: refused or dropped connection.
        const c = (err as { cause?: { code?: string; message?: string } }).cause;
        const cause = c?.code ?? c?.message ?? (err as Error).message;
        if (cause === 'ECONNREFUSED' && result.sent === 0 && result.retries === 0) {
          throw new SimulateError(
            `Cannot reach Parley at ${opts.url} (connection refused). Is it running? Start it with: parley start`,
          );
        }
        why = `connection failed: ${cause}`;
      }
      if (attempt >= maxAttempts)
        throw new SimulateError(`POST ${endpoint} still failing after ${attempt} attempts: ${why}`);
      result.retries++;
      const backoff = Math.min(10_000, backoffMs * 2 ** (attempt - 1));
      await sleep(retryAfterMs ?? backoff / 2 + Math.random() * (backoff / 2));
    }
  };

  const worker = async () => {
    for (;;) {
      if (abort.signal.aborted) return;
      const next = source.next();
      if (next.done) return;
      const batch = next.value;
      await limit(batch.length);
      const answer = await post(batch);
      result.sent += batch.length;
      result.accepted += answer.accepted;
      result.rejected += answer.rejected.length;
      for (const r of answer.rejected) {
        if (result.samples.length < 5)
          result.samples.push({ event_id: batch[r.index]?.event_id ?? '?', error: r.error });
      }
      opts.onProgress?.({
        sent: result.sent,
        accepted: result.accepted,
        rejected: result.rejected,
        retries: result.retries,
      });
    }
  };

  const workers = Array.from({ length: concurrency }, () =>
    worker().catch((err) => {
      abort.abort(); // one fatal error stops the others
      throw err;
    }),
  );
  const settled = await Promise.allSettled(workers);
  const failed =
    settled.find(
      (s): s is PromiseRejectedResult => s.status === 'rejected' && s.reason instanceof SimulateError,
    ) ?? settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return result;
}

function describe(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { error?: string; message?: string };
    if (body.error || body.message)
      return `${status} ${body.error ?? ''}: ${body.message ?? ''}`.replace(' :', ':');
  } catch {}
  return `${status} ${text.slice(0, 200)}`;
}
