import KeyvRedis, { createClient, type RedisClientType } from '@keyv/redis';
import Keyv from 'keyv';
import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from './logger.ts';
import { lagTolerantTimer } from './time.ts';

/**
 * A cache of namespaced entries (one namespace per kind of record) on Keyv: in memory by
 * default, Redis when several replicas must share it. A namespace can be dropped whole, which is
 * how a change notice that names no record (or one the cache cannot key) takes effect.
 *
 * The cache is an optimisation and nothing more: every operation has a deadline, an error or a
 * timeout counts as a miss (or a lost write), and after one the cache is left alone for a while
 * rather than making every request wait on a store that is down.
 */
export interface CacheStore {
  readonly kind: 'memory' | 'redis';
  /**
   * Values for `keys` in the namespace, undefined where missing or expired; all undefined when the
   * store fails. `forWrite`: the read of a read-modify-write, off the answer's path, so it has a
   * write's deadline and no part in the bypass.
   */
  getMany(namespace: string, keys: readonly string[], options?: { readonly forWrite?: boolean }): Promise<Array<CacheValue | undefined>>;
  /**
   * Stores a value: JSON data, whose large parts are strings (Redis stores it as JSON, memory as
   * it is, so it must not be changed once stored).
   */
  set(namespace: string, key: string, value: CacheValue, ttlMs: number): Promise<void>;
  /** Drops entries; false when the store could not be told (an invalidation that must be retried). */
  delete(namespace: string, keys: readonly string[]): Promise<boolean>;
  /** Drops every entry of the namespace; false when the store could not be told. */
  clear(namespace: string): Promise<boolean>;
  /** Resolves once the store can serve, or after `timeoutMs` (a store that is down is served around, not waited for). */
  connected(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

const FAILURES_BEFORE_BYPASS = 3;
/** Deadline of a delete or clear (a change notice): long enough for a scan, short enough to answer the notice. */
const INVALIDATION_TIMEOUT_MS = 5_000;
/**
 * Deadline of a write. No answer waits for one, so a slow write costs only the memory it holds:
 * it is given far longer than a read, and it never makes reads bypass the store (on a busy
 * machine, writes that queued behind each other for a read's 100 ms used to turn the cache off).
 */
const WRITE_TIMEOUT_MS = 2_000;
/** Writes waiting on the store at once; past this a write is dropped (a later miss), so a stalled store cannot grow the heap. */
const MAX_PENDING_WRITES = 1_000;

/** A stored value: plain JSON data. */
export type CacheValue = Readonly<Record<string, unknown>>;

interface MemoryEntry {
  value: CacheValue;
  expires?: number;
}

/** Roughly what a value holds, for the memory budget: its strings, up to two levels down. */
function approximateBytes(value: unknown, depth = 0): number {
  if (typeof value === 'string') return value.length * 2 + 16;
  if (!value || typeof value !== 'object' || depth > 2) return 16;
  let bytes = 32;
  for (const [key, item] of Object.entries(value)) bytes += key.length * 2 + approximateBytes(item, depth + 1);
  return bytes;
}

export type CacheStoreConfig =
  { readonly kind: 'memory'; readonly maxBytes: number } | { readonly kind: 'redis'; readonly url: string; readonly prefix: string };

export interface CacheStoreOptions {
  readonly logger: Logger;
  readonly registry?: Registry;
  /** Deadline of one cache operation. */
  readonly timeoutMs: number;
  /** After a failure, how long the store is bypassed. */
  readonly backoffMs: number;
}

export function createCacheStore(config: CacheStoreConfig, options: CacheStoreOptions): CacheStore {
  const { logger } = options;
  const failures = options.registry
    ? new Counter({
        name: 'concord_cache_failures_total',
        help: 'Cache operations that failed, timed out or found the store unavailable, treated as misses, by operation.',
        labelNames: ['operation'],
        registers: [options.registry],
      })
    : undefined;
  let redis: RedisClientType | undefined;
  if (config.kind === 'redis') {
    // No offline queue: while Redis is away, commands fail at once instead of piling up.
    redis = createClient({
      url: config.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2_000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 5_000) },
    }) as RedisClientType;
    let lastLogged = 0;
    redis.on('error', (error: Error) => {
      // A down Redis reports on every reconnect attempt; one line a minute is enough.
      if (Date.now() - lastLogged > 60_000) {
        lastLogged = Date.now();
        logger.warn({ err: error }, 'cache store (Redis) unavailable; serving without cache');
      }
    });
  }
  const connecting = redis?.connect().then(
    () => true,
    () => false,
  );

  // In memory, values are kept as they are in Keyv's {value, expires} envelope: no encoding.
  const memory =
    config.kind === 'memory'
      ? new LRUCache<string, MemoryEntry>({
          maxSize: config.maxBytes,
          sizeCalculation: (entry, key) => approximateBytes(entry.value) + key.length * 2 + 64,
        })
      : undefined;
  const namespaces = new Map<string, Keyv<CacheValue>>();
  const keyvOf = (namespace: string): Keyv<CacheValue> => {
    let keyv = namespaces.get(namespace);
    if (keyv) return keyv;
    if (config.kind === 'memory') {
      // One LRU for every namespace, so the budget is one number; a namespace is a key prefix.
      const prefix = `${namespace}\u0000`;
      const store = {
        get: (key: string) => memory!.get(prefix + key),
        set: (key: string, entry: MemoryEntry, ttl?: number) => void memory!.set(prefix + key, entry, ttl ? { ttl } : {}),
        delete: (key: string) => memory!.delete(prefix + key),
        clear: () => {
          for (const key of [...memory!.keys()]) if (key.startsWith(prefix)) memory!.delete(key);
        },
        has: (key: string) => memory!.has(prefix + key),
      };
      keyv = new Keyv<CacheValue>({
        store: store as never,
        namespace,
        useKeyPrefix: false,
        throwOnErrors: true,
        serialize: undefined,
        deserialize: undefined,
      });
    } else {
      const store = new KeyvRedis<CacheValue>(redis!, { namespace: `${config.prefix}:${namespace}`, throwOnErrors: true });
      keyv = new Keyv<CacheValue>({ store, namespace: `${config.prefix}:${namespace}`, useKeyPrefix: false, throwOnErrors: true });
    }
    keyv.on('error', () => undefined);
    namespaces.set(namespace, keyv);
    return keyv;
  };

  // A slow read is one miss; only several failed reads in a row make the store be left alone.
  let bypassUntil = 0;
  let failuresInARow = 0;
  let pendingWrites = 0;
  const guarded = async <T>(
    operation: string,
    fallback: T,
    run: () => Promise<T>,
    { timeoutMs = options.timeoutMs, bypass = true }: { timeoutMs?: number; bypass?: boolean } = {},
  ): Promise<T> => {
    if (config.kind === 'memory') {
      try {
        return await run();
      } catch (error) {
        failures?.inc({ operation });
        logger.warn({ err: error, operation }, 'cache operation failed; treated as a miss');
        return fallback;
      }
    }
    if (bypass && Date.now() < bypassUntil) return fallback;
    try {
      const result = await withDeadline(run(), timeoutMs, `cache ${operation}`);
      if (bypass) failuresInARow = 0;
      return result;
    } catch (error) {
      failures?.inc({ operation });
      if (bypass && ++failuresInARow >= FAILURES_BEFORE_BYPASS) {
        bypassUntil = Date.now() + options.backoffMs;
        failuresInARow = 0;
        logger.warn({ err: error, operation, bypassMs: options.backoffMs }, 'cache store failing; served around for a while');
      }
      return fallback;
    }
  };
  const written = async <T>(operation: string, fallback: T, run: () => Promise<T>): Promise<T> => {
    if (pendingWrites >= MAX_PENDING_WRITES) {
      failures?.inc({ operation: 'dropped' });
      return fallback;
    }
    pendingWrites++;
    try {
      return await guarded(operation, fallback, run, { timeoutMs: WRITE_TIMEOUT_MS, bypass: false });
    } finally {
      pendingWrites--;
    }
  };
  const redisUp = () => config.kind === 'memory' || redis!.isReady;

  return {
    kind: config.kind,
    getMany(namespace, keys, { forWrite = false } = {}) {
      const none = keys.map(() => undefined);
      if (!keys.length) return Promise.resolve(none);
      if (!redisUp()) {
        failures?.inc({ operation: 'unavailable' });
        return Promise.resolve(none);
      }
      const read = async () => {
        const values = await keyvOf(namespace).getMany<CacheValue>([...keys]);
        return values.map((value) => (value && typeof value === 'object' ? value : undefined));
      };
      return forWrite ? written('get', none, read) : guarded('get', none, read);
    },
    async set(namespace, key, value, ttlMs) {
      if (ttlMs <= 0 || !redisUp()) return;
      await written('set', undefined, async () => {
        await keyvOf(namespace).set(key, value, ttlMs);
      });
    },
    async delete(namespace, keys) {
      if (!keys.length) return true;
      // Invalidation must not be skipped because an earlier read failed: no bypass here.
      bypassUntil = 0;
      return guarded(
        'delete',
        false,
        async () => {
          await keyvOf(namespace).deleteMany([...keys]);
          return true;
        },
        { timeoutMs: INVALIDATION_TIMEOUT_MS },
      );
    },
    async clear(namespace) {
      bypassUntil = 0;
      // Redis scans the namespace's keys to drop them: a longer deadline than a read's.
      return guarded(
        'clear',
        false,
        async () => {
          await keyvOf(namespace).clear();
          return true;
        },
        { timeoutMs: INVALIDATION_TIMEOUT_MS },
      );
    },
    async connected(timeoutMs) {
      if (!connecting) return true;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const ready = await Promise.race([connecting, timedOut]);
      clearTimeout(timer);
      return ready;
    },
    async close() {
      if (redis?.isOpen) await redis.close().catch(() => undefined);
    },
  };
}

/**
 * `work`, or a rejection once `ms` have passed while this process was free to hear the answer
 * (lagTolerantTimer): the store's answer may have been waiting in the socket, or not yet sent by
 * a store starved of CPU at the same moment, so the deadline measures the store, not this
 * process's own delays, and a store that is really slow is still cut off within a few deadlines.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = lagTolerantTimer(ms, () => reject(new Error(`${what} took longer than ${ms} ms`)));
    work.then(
      (value) => {
        deadline.clear();
        resolve(value);
      },
      (error: unknown) => {
        deadline.clear();
        reject(error);
      },
    );
  });
}
