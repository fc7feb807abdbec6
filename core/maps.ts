/** The map's value for key, made by `make` and stored first when there is none. */
export function entry<K, V>(map: Map<K, V>, key: K, make: () => NoInfer<V>): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
