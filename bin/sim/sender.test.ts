import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulateError, sendEvents } from './sender.ts';

// The sender's own behaviour under answers a healthy Parley rarely gives (503, refused keys),
// against a plain HTTP server that plays them; test/simulate.test.ts runs it against Parley.

type Handler = (body: { event_id: string }[], req: IncomingMessage, res: ServerResponse) => void;

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => server?.close(r));
  server = undefined;
});

async function serve(handler: Handler): Promise<string> {
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => handler(JSON.parse(raw), req, res));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const accept = (res: ServerResponse, accepted: number, rejected: { index: number; error: string }[] = []) =>
  res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted, rejected }));
const fail = (res: ServerResponse, status: number, error: string) =>
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ error, message: `says ${status}` }));
const events = (n: number) => Array.from({ length: n }, (_, i) => ({ event_id: `e${i}` }));

describe('sendEvents', () => {
  it('sends every event once in batches, with the key, counting rejections', async () => {
    const seen: string[] = [];
    const auth = new Set<string | undefined>();
    let biggest = 0;
    const url = await serve((body, req, res) => {
      auth.add(req.headers.authorization);
      seen.push(...body.map((e) => e.event_id));
      biggest = Math.max(biggest, body.length);
      accept(res, body.length - 1, [{ index: 0, error: 'type: unknown event type' }]);
    });
    const r = await sendEvents(events(2500), { url, key: 'k-123', concurrency: 3 });
    expect(seen.sort()).toEqual(
      events(2500)
        .map((e) => e.event_id)
        .sort(),
    );
    expect(auth).toEqual(new Set(['Bearer k-123']));
    expect(biggest).toBe(1000);
    expect(r).toMatchObject({ sent: 2500, accepted: 2497, rejected: 3, retries: 0, requests: 3 });
    expect(r.samples[0]).toEqual({
      event_id: expect.stringMatching(/^e\d+$/),
      error: 'type: unknown event type',
    });
  });

  it('retries a 503 with backoff until the events are taken', async () => {
    let calls = 0;
    const url = await serve((body, _req, res) =>
      ++calls <= 2 ? fail(res, 503, 'PARLEY_ERR_BUS_UNAVAILABLE') : accept(res, body.length),
    );
    const progress: number[] = [];
    const r = await sendEvents(events(10), {
      url,
      key: 'k',
      backoffMs: 5,
      onProgress: (p) => progress.push(p.sent),
    });
    expect(r).toMatchObject({ sent: 10, accepted: 10, retries: 2, requests: 3 });
    expect(progress).toEqual([10]);
  });

  it('gives up on a 503 that never ends, saying so', async () => {
    const url = await serve((_b, _r, res) => fail(res, 503, 'PARLEY_ERR_BUS_UNAVAILABLE'));
    await expect(sendEvents(events(5), { url, key: 'k', backoffMs: 1, maxAttempts: 3 })).rejects.toThrow(
      /still failing after 3 attempts: 503 PARLEY_ERR_BUS_UNAVAILABLE/,
    );
  });

  it('stops at once on a refused key, with what to do about it', async () => {
    for (const status of [401, 403]) {
      let calls = 0;
      const url = await serve((_b, _r, res) => {
        calls++;
        fail(res, status, 'PARLEY_ERR_UNAUTHORIZED');
      });
      const err = await sendEvents(events(5000), { url, key: 'bad', concurrency: 2 }).catch((e) => e);
      expect(err).toBeInstanceOf(SimulateError);
      expect(err.message).toMatch(
        new RegExp(`refused the API key \\(${status} .*--key KEY, or set PARLEY_API_KEY`),
      );
      expect(calls).toBeLessThanOrEqual(2); // no retries, the other requests stop too
      await new Promise((r) => server?.close(r));
    }
  });

  it('reports other 4xx answers as errors instead of retrying them', async () => {
    const url = await serve((_b, _r, res) => fail(res, 413, 'PARLEY_ERR_PAYLOAD_TOO_LARGE'));
    await expect(sendEvents(events(3), { url, key: 'k' })).rejects.toThrow(
      /failed: 413 PARLEY_ERR_PAYLOAD_TOO_LARGE: says 413/,
    );
  });

  it('says when nothing listens at the address', async () => {
    const url = await serve((_b, _r, res) => accept(res, 0));
    await new Promise((r) => server!.close(r));
    await expect(sendEvents(events(3), { url, key: 'k' })).rejects.toThrow(
      /Cannot reach Parley at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)\. Is it running\?/,
    );
  });

  it('keeps to the rate cap and the concurrency limit', async () => {
    let inFlight = 0;
    let most = 0;
    const url = await serve((body, _req, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        accept(res, body.length);
      }, 20);
    });
    const started = performance.now();
    // 2,000 events/s in batches of 400: the last of 3 batches may leave only after 400 ms.
    const r = await sendEvents(events(1000), { url, key: 'k', rate: 2000, concurrency: 4 });
    expect(r.requests).toBe(3);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    const quick = await sendEvents(events(8000), { url, key: 'k', concurrency: 3 });
    expect(quick.requests).toBe(8);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
  });
});
