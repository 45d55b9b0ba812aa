import DataLoader from 'dataloader';

/**
 * A loader of one record per key, over a batch call that returns the records found in any
 * order. Keys with no record resolve to null; a failed call rejects every key of the batch.
 * One instance per request (DataLoader caches for its lifetime).
 */
export function recordLoader<K, V>(fetch: (keys: readonly K[]) => Promise<V[]>, keyOf: (record: V) => K): DataLoader<K, V | null> {
  return new DataLoader<K, V | null>(async (keys) => {
    const found = new Map<K, V>();
    for (const record of await fetch(keys)) found.set(keyOf(record), record);
    return keys.map((key) => found.get(key) ?? null);
  });
}

/** A loader of the list of records that belong to each key (a one-to-many edge). */
export function listLoader<K, V>(fetch: (keys: readonly K[]) => Promise<V[]>, keyOf: (record: V) => K): DataLoader<K, V[]> {
  return new DataLoader<K, V[]>(async (keys) => {
    const groups = new Map<K, V[]>(keys.map((key) => [key, []]));
    for (const record of await fetch(keys)) groups.get(keyOf(record))?.push(record);
    return keys.map((key) => groups.get(key) ?? []);
  });
}

/**
 * A loader whose keys carry arguments (a page size, a status filter, the parts to read with a
 * record): keys with the same arguments share one call, so an edge costs one call per distinct
 * argument set. `load` answers one call, as a look-up of each of its keys.
 */
function loaderWithArgs<K, A, R>(
  load: (keys: readonly K[], args: A) => Promise<(key: K) => R>,
): DataLoader<{ key: K; args: A }, R, string> {
  return new DataLoader<{ key: K; args: A }, R, string>(
    async (requests) => {
      const byArgs = new Map<string, { args: A; keys: K[] }>();
      for (const { key, args } of requests) {
        const id = JSON.stringify(args);
        const group = byArgs.get(id) ?? { args, keys: [] };
        group.keys.push(key);
        byArgs.set(id, group);
      }
      const answers = new Map<string, (key: K) => R>();
      await Promise.all([...byArgs].map(async ([id, { args, keys }]) => answers.set(id, await load(keys, args))));
      return requests.map(({ key, args }) => answers.get(JSON.stringify(args))!(key));
    },
    { cacheKeyFn: ({ key, args }) => `${JSON.stringify(args)}\u0000${String(key)}` },
  );
}

/** A list loader whose keys carry arguments (see loaderWithArgs). */
export function listLoaderWithArgs<K, A, V>(
  fetch: (keys: readonly K[], args: A) => Promise<V[]>,
  keyOf: (record: V) => K,
): DataLoader<{ key: K; args: A }, V[], string> {
  return loaderWithArgs(async (keys, args) => {
    const groups = new Map<K, V[]>(keys.map((key) => [key, []]));
    for (const record of await fetch(keys, args)) groups.get(keyOf(record))?.push(record);
    return (key) => groups.get(key) ?? [];
  });
}

/** A loader of one record per key whose keys carry arguments (see loaderWithArgs); null where none is found. */
export function recordLoaderWithArgs<K, A, V>(
  fetch: (keys: readonly K[], args: A) => Promise<V[]>,
  keyOf: (record: V) => K,
): DataLoader<{ key: K; args: A }, V | null, string> {
  return loaderWithArgs(async (keys, args) => {
    const found = new Map<K, V>();
    for (const record of await fetch(keys, args)) found.set(keyOf(record), record);
    return (key) => found.get(key) ?? null;
  });
}
