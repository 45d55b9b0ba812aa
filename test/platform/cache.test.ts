import { describe, expect, it } from 'vitest';
import { createCacheStore } from '../../platform/cache.ts';
import { createLogger } from '../../platform/logger.ts';

const logger = createLogger('test', 'silent');
const memory = (maxBytes: number) => createCacheStore({ kind: 'memory', maxBytes }, { logger, timeoutMs: 50, backoffMs: 1_000 });

describe('the in-memory cache store', () => {
  it('holds at most its budget, dropping the least recently used', async () => {
    const store = memory(100_000);
    const value = { s: 'x'.repeat(1_000) }; // about 2 KB with its key
    for (let i = 0; i < 200; i++) await store.set('Customer', `c${i}`, value, 60_000);
    const all = await store.getMany(
      'Customer',
      Array.from({ length: 200 }, (_, i) => `c${i}`),
    );
    const kept = all.filter((entry) => entry !== undefined).length;
    expect(kept).toBeGreaterThan(20);
    expect(kept).toBeLessThan(60);
    expect(all.at(-1)).toEqual(value);
    expect(all[0]).toBeUndefined();
  });

  it('drops one namespace whole and leaves the others', async () => {
    const store = memory(1_000_000);
    await store.set('Customer', 'a', { v: '1' }, 60_000);
    await store.set('Order', 'a', { v: '2' }, 60_000);
    await store.clear('Customer');
    expect(await store.getMany('Customer', ['a'])).toEqual([undefined]);
    expect(await store.getMany('Order', ['a'])).toEqual([{ v: '2' }]);
  });

  it('forgets an entry when its lifetime ends', async () => {
    const store = memory(1_000_000);
    await store.set('Case', '1', { status: 'open' }, 100);
    expect(await store.getMany('Case', ['1'])).toEqual([{ status: 'open' }]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await store.getMany('Case', ['1'])).toEqual([undefined]);
  });
});
