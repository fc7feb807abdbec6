/** The map's value for key, made by `make` and stored first when there is none. */
export function entry<K, V>(map: Map<K, V>, key: K, make: () => NoInfer<V>): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/**
 * `make(key)`, remembered for at most `max` keys at once (all are forgotten when it is full): for
 * the few keys a hot path meets again and again.
 */
export function memoized<K, V>(max: number, make: (key: K) => V): (key: K) => V {
  const map = new Map<K, V>();
  return (key) => {
    let v = map.get(key);
    if (v === undefined) {
      if (map.size >= max) map.clear();
      v = make(key);
      map.set(key, v);
    }
    return v;
  };
}
