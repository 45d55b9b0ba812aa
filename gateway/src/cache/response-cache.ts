import type { ApolloServerPlugin } from '@apollo/server';
import responseCachePlugin from '@apollo/server-plugin-response-cache';
import type { KeyValueCache } from '@apollo/utils.keyvaluecache';
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

  note(expires: number): void {
    if (expires < this.expires) this.expires = expires;
  }

  /** Whole seconds left, 0 when the answer may not be cached. */
  secondsLeft(now = Date.now()): number {
    if (!Number.isFinite(this.expires)) return 0;
    return Math.max(0, Math.floor((this.expires - now) / 1000));
  }
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
 */
export function responseCache(store: CacheStore, entities: EntityCache): ApolloServerPlugin<GatewayContext> {
  return responseCachePlugin<GatewayContext>({
    cache: keyValueCacheOver(store, entities),
    extraCacheKeyData: async ({ contextValue }) => scopeOf(contextValue.identity),
    // Concord's own processes decide on what they read: they read the systems, never a copy.
    shouldReadFromCache: async ({ contextValue }) => !readsFresh(contextValue.identity),
    shouldWriteToCache: async ({ contextValue, overallCachePolicy }) => {
      if (readsFresh(contextValue.identity)) return false;
      const lifetime = contextValue.answerLifetime;
      const seconds = lifetime.secondsLeft();
      if (seconds < 1 || entities.lastInvalidation >= lifetime.startedAt) return false;
      // Subgraphs answer no-store, which the gateway folds into this policy: the lifetime the
      // gateway computed from its cache policy replaces it.
      overallCachePolicy.replace({ maxAge: seconds, scope: 'PUBLIC' });
      return true;
    },
  }) as ApolloServerPlugin<GatewayContext>;
}

/** Apollo's key-value cache interface over the gateway's cache store (its deadlines, its Redis). */
function keyValueCacheOver(store: CacheStore, entities: EntityCache): KeyValueCache<string> {
  return {
    async get(key) {
      const [value] = await store.getMany(RESPONSE_NAMESPACE, [key]);
      const answer = typeof value?.answer === 'string' ? value.answer : undefined;
      entities.countAnswerLookup(answer !== undefined);
      return answer;
    },
    async set(key, answer, options) {
      const ttlMs = (options?.ttl ?? 0) * 1000;
      if (ttlMs > 0) await store.set(RESPONSE_NAMESPACE, key, { answer }, ttlMs);
    },
    async delete(key) {
      await store.delete(RESPONSE_NAMESPACE, [key]);
      return true;
    },
  };
}
