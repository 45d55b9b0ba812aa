import { createHash } from 'node:crypto';
import type { ApolloServerPlugin } from '@apollo/server';
import responseCachePlugin from '@apollo/server-plugin-response-cache';
import type { KeyValueCache } from '@apollo/utils.keyvaluecache';
import { LRUCache } from 'lru-cache';
import type { CacheStore } from '../../../platform/cache.ts';
import type { GatewayContext } from '../context.ts';
import { readsFresh, RESPONSE_NAMESPACE, scopeOf, type EntityCache } from './entity-cache.ts';

/**
 * How long the answer being built may be served again: the earliest expiry of anything it was
 * built from (cache entries it was served from, fetches it stored), 0 as soon as one part may
 * not be cached. The entity cache notes each part as the executor fetches it.
 */
export class AnswerLifetime {
  private expires = Infinity;
  /** When the request began: a change notice applied since then may concern what it read. */
  readonly startedAt = Date.now();
  /** The records the answer was built from (`type\u0000key`), as the entity cache stores them. */
  readonly held = new Set<string>();
  /** It was built from something no one record names (a list, a search): any change concerns it. */
  holdsAnything = false;
  /** Its answer is being written to the cache (set between shouldWriteToCache and the write). */
  writing = false;

  note(expires: number): void {
    if (expires < this.expires) this.expires = expires;
  }

  holds(namespace: string, key: string | null): void {
    if (key === null) this.holdsAnything = true;
    else this.held.add(`${namespace}\u0000${key}`);
  }

  /** Whole seconds left, 0 when the answer may not be cached. */
  secondsLeft(now = Date.now()): number {
    if (!Number.isFinite(this.expires)) return 0;
    return Math.max(0, Math.floor((this.expires - now) / 1000));
  }
}

/** What a stored answer was built from, and when its request began. */
interface Provenance {
  since: number;
  held: string[];
  anything: boolean;
}

/**
 * Whole answers, for callers of the same scope asking the same query with the same variables
 * (many agents watching one queue), with Apollo's response-cache plugin over the gateway's store.
 *
 * An answer is kept only as long as the earliest-expiring part it was built from, so caching the
 * whole adds nothing to how stale any part may be (the volatile bound holds); an answer with
 * errors, or with a part that may not be cached, is not kept; mutations never. Keys carry the
 * caller's scope (roles and portal customer), like the entity cache's. The gateway's own checks
 * (token, registered portal operations, cost) run before the cache is read.
 *
 * Each answer is stored with the records it was built from (the entity cache's keys of every
 * entity and looked-up record its fetches touched) and when its request began. A change notice
 * makes the answers that hold the changed record misses, and only those: a case's note leaves
 * the other cases' answers in place. An answer built from a list or a search (no one record
 * names what it holds) is a miss after any notice, as is one begun before a change the gateway
 * no longer remembers one by one.
 */
export function responseCache(store: CacheStore, entities: EntityCache): ApolloServerPlugin<GatewayContext> {
  // Between the write decision (which sees the request) and the write (which sees only the key).
  const pending = new LRUCache<string, Provenance>({ max: 10_000, ttl: 60_000 });
  return responseCachePlugin<GatewayContext>({
    cache: keyValueCacheOver(store, entities, pending),
    extraCacheKeyData: async ({ contextValue }) => scopeOf(contextValue.identity),
    generateCacheKey: (requestContext, keyData) => {
      const key = createHash('sha256').update(JSON.stringify(keyData)).digest('hex');
      const lifetime = requestContext.contextValue.answerLifetime;
      if (lifetime.writing) {
        // Two requests for one key at once: the earlier start and everything either held.
        const other = pending.get(key);
        pending.set(key, {
          since: Math.min(lifetime.startedAt, other?.since ?? Infinity),
          held: [...new Set([...lifetime.held, ...(other?.held ?? [])])],
          anything: lifetime.holdsAnything || (other?.anything ?? false),
        });
      }
      return key;
    },
    // Concord's own processes decide on what they read: they read the systems, never a copy.
    shouldReadFromCache: async ({ contextValue }) => !readsFresh(contextValue.identity),
    shouldWriteToCache: async ({ contextValue, overallCachePolicy }) => {
      if (readsFresh(contextValue.identity)) return false;
      const lifetime = contextValue.answerLifetime;
      const seconds = lifetime.secondsLeft();
      if (seconds < 1 || entities.changedSince(lifetime.held, lifetime.holdsAnything, lifetime.startedAt)) return false;
      // Subgraphs answer no-store, which the gateway folds into this policy: the lifetime the
      // gateway computed from its cache policy replaces it.
      overallCachePolicy.replace({ maxAge: seconds, scope: 'PUBLIC' });
      lifetime.writing = true;
      return true;
    },
  }) as ApolloServerPlugin<GatewayContext>;
}

/** Apollo's key-value cache interface over the gateway's cache store (its deadlines, its Redis). */
function keyValueCacheOver(store: CacheStore, entities: EntityCache, pending: LRUCache<string, Provenance>): KeyValueCache<string> {
  return {
    async get(key) {
      const [value] = await store.getMany(RESPONSE_NAMESPACE, [key]);
      let answer = typeof value?.answer === 'string' ? value.answer : undefined;
      if (answer !== undefined) {
        const { since, held, anything } = value as Partial<Provenance>;
        if (typeof since !== 'number' || !Array.isArray(held) || entities.changedSince(held, anything !== false, since)) {
          answer = undefined;
        }
      }
      entities.countAnswerLookup(answer !== undefined);
      return answer;
    },
    async set(key, answer, options) {
      const ttlMs = (options?.ttl ?? 0) * 1000;
      // The plugin prefixes the key it generated ("fqc:"); the hash itself holds no colon.
      const generated = key.slice(key.lastIndexOf(':') + 1);
      const provenance = pending.get(generated);
      pending.delete(generated);
      // An answer whose provenance is not known is not kept: no notice could drop it.
      if (ttlMs > 0 && provenance) await store.set(RESPONSE_NAMESPACE, key, { answer, ...provenance }, ttlMs);
    },
    async delete(key) {
      await store.delete(RESPONSE_NAMESPACE, [key]);
      return true;
    },
  };
}
