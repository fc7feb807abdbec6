import { useEffect, useState } from 'preact/hooks';

/** Runs `load` whenever `key` changes (null: not now); a late answer for an old key is dropped. */
export function useData<T>(key: string | null, load: () => Promise<T>, refreshMs?: number) {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean; key?: string }>({
    loading: key !== null,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (key === null) return setState({ loading: false });
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false, key }),
      (error) => live && setState({ error, loading: false, key }),
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  useEffect(() => {
    if (!refreshMs) return;
    const t = setInterval(() => setTick((n) => n + 1), refreshMs);
    return () => clearInterval(t);
  }, [refreshMs]);
  return { ...state, reload: () => setTick((n) => n + 1) };
}
