import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createCacheStore, type CacheStore } from '../../platform/cache.ts';
import { createLogger } from '../../platform/logger.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

/** Holds this process's event loop, as a busy or descheduled gateway does. */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/**
 * The Redis store on a busy process (a real redis-server): the 100 ms read deadline measures
 * Redis, not this process's own delays, and writes, which no answer waits for, never turn the
 * cache off.
 */
describe('the Redis cache store on a busy process', () => {
  let redis: RedisServer;
  let store: CacheStore;
  let registry: Registry;

  beforeAll(async () => {
    redis = await startRedis();
    registry = new Registry();
    store = createCacheStore(
      { kind: 'redis', url: redis.url, prefix: 'test' },
      { logger: createLogger('test', 'silent'), registry, timeoutMs: 100, backoffMs: 5_000 },
    );
    expect(await store.connected(5_000)).toBe(true);
  });
  afterAll(async () => {
    await store?.close();
    await redis?.stop();
  });

  const failures = async () => (await registry.getSingleMetricAsString('concord_cache_failures_total')).trim();

  it('answers a read whose reply arrived while the process was busy past the deadline', async () => {
    await store.set('Case', 'busy-read', { subject: 'kept' }, 60_000);
    const read = store.getMany('Case', ['busy-read']);
    busyFor(250);
    expect(await read).toEqual([{ subject: 'kept' }]);
  });

  it('keeps writes queued behind a busy spell, and reads stay on', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `burst-${i}`);
    const writes = keys.map((key) => store.set('Case', key, { key }, 60_000));
    busyFor(250);
    await Promise.all(writes);
    const read = await store.getMany('Case', keys);
    expect(read, `cache failures: ${await failures()}`).toEqual(keys.map((key) => ({ key })));
  });

  it('still cuts off a Redis that does not answer, whether or not this process was held up', async () => {
    await store.set('Case', 'hung', { subject: 'kept' }, 60_000);
    redis.pause();
    try {
      let started = performance.now();
      expect(await store.getMany('Case', ['hung'])).toEqual([undefined]);
      const free = performance.now() - started;
      started = performance.now();
      const read = store.getMany('Case', ['hung']);
      busyFor(250);
      expect(await read).toEqual([undefined]);
      const held = performance.now() - started;
      // 100 ms deadline: a free process gives up after about one; a held one after the time it
      // lost and at most a few more deadlines, never waiting on Redis for good.
      expect(free).toBeLessThan(1_000);
      expect(held).toBeLessThan(250 + 1_000);
    } finally {
      redis.resume();
    }
  });
});
