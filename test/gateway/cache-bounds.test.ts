import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Supergraph } from '@apollo/federation-internals';
import type { GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { EntityCache, INCOMING_OPERATION } from '../../gateway/src/cache/entity-cache.ts';
import { DEFAULT_TIER_TTLS_S } from '../../gateway/src/cache/policy.ts';
import { createCacheStore } from '../../platform/cache.ts';
import { createLogger } from '../../platform/logger.ts';
import { SUPERGRAPH_PATH } from '../helpers/stack.ts';

const sdl = readFileSync(SUPERGRAPH_PATH, 'utf8');
const apiSchema = Supergraph.build(sdl).apiSchema().toGraphQLJSSchema();
const logger = createLogger('test', 'silent');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('per-query caches', () => {
  it('are bounded in bytes: subgraph queries with unique huge literals do not grow the heap', async () => {
    const registry = new Registry();
    const store = createCacheStore({ kind: 'memory', maxBytes: 1_000_000 }, { logger, timeoutMs: 50, backoffMs: 1_000 });
    const cache = new EntityCache(store, DEFAULT_TIER_TTLS_S, logger, registry);
    cache.setSchema(apiSchema, sdl);
    const identity = { subject: 'ann@example.com', roles: ['support_agent' as const], customerId: null };
    const fetch = async () => ({ data: { case: null } });
    const before = heapAfterGc();
    // 200 queries of 256 KB each: 50 MB of query text if the plans kept their keys.
    for (let i = 0; i < 200; i += 1) {
      const literal = `${i}-${'x'.repeat(256 * 1024)}`;
      const options = {
        kind: INCOMING_OPERATION,
        request: { query: `{ case(id: "${literal}") { id subject } }`, variables: {} },
      } as unknown as GraphQLDataSourceProcessOptions;
      await cache.process('support', identity, options, fetch);
    }
    await cache.flush();
    const grown = heapAfterGc() - before;
    expect(grown).toBeLessThan(20 * 1024 * 1024);
    const metrics = await registry.metrics();
    const planBytes = Number(/^concord_cache_plan_bytes (\d+)/m.exec(metrics)?.[1]);
    expect(planBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
  });
});
