// Every call carries the session cookie (same origin) and the header that marks it as the app's
// own request; the server refuses signed-in writes without it. No key is ever held here.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export type Session = { roles: string[]; businesses: string[] | null; expires_at: string | null };

export async function call<T>(method: string, path: string, body?: unknown, accept?: string): Promise<T> {
  const headers: Record<string, string> = { 'x-parley-request': '1' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (accept) headers.accept = accept;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  if (!res.ok) {
    const e = await res.json().catch(() => ({}));
    throw new ApiError(res.status, e.error ?? 'ERROR', e.message ?? res.statusText, e.details);
  }
  if (accept && accept !== 'application/json') return (await res.blob()) as T;
  return res.json() as Promise<T>;
}

export const get = <T>(path: string) => call<T>('GET', path);
export const post = <T>(path: string, body: unknown) => call<T>('POST', path, body);

/** The path of a validation error's detail, as "a.b.0.c", for showing it next to its field. */
export function errorPaths(err: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!(err instanceof ApiError)) return out;
  const details = Array.isArray(err.details) ? err.details : [];
  for (const d of details as { instancePath?: string; message?: string }[]) {
    const path = (d.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    if (!out.has(path)) out.set(path, d.message ?? 'invalid');
  }
  return out;
}
