import { isClickHouseError } from './client.ts';

// A record the store refuses must not hold back the records around it, nor be retried forever:
// a batch the store refuses for its data is halved until the refused records are found; the rest
// is stored. An outage (not a data error) still throws, so the whole batch comes again.

export type Refused<T> = { item: T; error: string };

/** Inserts items; returns those the store refused for their data, each with the store's reason. */
export async function insertIsolating<T>(
  items: readonly T[],
  insert: (items: readonly T[]) => Promise<void>,
): Promise<Refused<T>[]> {
  if (!items.length) return [];
  try {
    await insert(items);
    return [];
  } catch (err) {
    if (!isClickHouseError(err)) throw err;
    if (items.length === 1) return [{ item: items[0], error: err.message }];
    const mid = items.length >> 1;
    return [
      ...(await insertIsolating(items.slice(0, mid), insert)),
      ...(await insertIsolating(items.slice(mid), insert)),
    ];
  }
}
