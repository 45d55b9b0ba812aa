import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import type { GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { isObjectType, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { EntityCache, INCOMING_OPERATION, keyFieldsOf } from '../../gateway/src/cache/entity-cache.ts';
import { CachePolicy, DEFAULT_TIER_TTLS_S, FIELD_TIERS, TYPE_TIERS } from '../../gateway/src/cache/policy.ts';
import { createCacheStore } from '../../platform/cache.ts';
import type { Identity } from '../../platform/identity.ts';
import { createLogger } from '../../platform/logger.ts';
import { SUPERGRAPH_PATH } from '../helpers/stack.ts';

const sdl = readFileSync(SUPERGRAPH_PATH, 'utf8');
const apiSchema = Supergraph.build(sdl).apiSchema().toGraphQLJSSchema();
const logger = createLogger('test', 'silent');

const AGENT: Identity = { subject: 'ann@example.com', roles: ['support_agent'], customerId: null };
const OTHER_AGENT: Identity = { subject: 'bob@example.com', roles: ['support_agent'], customerId: null };
const SALES: Identity = { subject: 'sam@example.com', roles: ['sales_rep'], customerId: null };
const PORTAL_A: Identity = { subject: 'a@customer.example', roles: ['portal_customer'], customerId: 'C1' };
const PORTAL_B: Identity = { subject: 'b@customer.example', roles: ['portal_customer'], customerId: 'C2' };

const CUSTOMERS = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Customer{name segment}}}';
const BALANCES = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Customer{openBalance{amount}}}}';

/** The cache with each call's writes settled before the next (answers never wait for writes). */
function settled(cache: EntityCache): EntityCache {
  const process = cache.process.bind(cache);
  cache.process = async (...args) => {
    const answer = await process(...args);
    await cache.flush();
    return answer;
  };
  return cache;
}

function newCache() {
  const store = createCacheStore({ kind: 'memory', maxBytes: 1_000_000 }, { logger, timeoutMs: 50, backoffMs: 1_000 });
  const cache = new EntityCache(store, DEFAULT_TIER_TTLS_S, logger);
  cache.setSchema(apiSchema, sdl);
  return settled(cache);
}

/** A subgraph that answers each representation with who asked, and records what it was asked. */
function fakeSubgraph(answer: (id: string, index: number) => unknown = (id) => ({ name: `name of ${id}` })) {
  const asked: string[][] = [];
  const fetch = async (options: GraphQLDataSourceProcessOptions) => {
    const representations = (options.request.variables?.representations ?? []) as Array<{ id: string }>;
    asked.push(representations.map((representation) => representation.id));
    return { data: { _entities: representations.map((representation, index) => answer(representation.id, index)) } };
  };
  return { asked, fetch };
}

const request = (query: string, ids: string[]) =>
  ({
    kind: INCOMING_OPERATION,
    request: { query, variables: { representations: ids.map((id) => ({ __typename: 'Customer', id })) } },
    document: undefined,
  }) as unknown as GraphQLDataSourceProcessOptions;

describe('the gateway cache policy', () => {
  it('places every object type of the supergraph in a tier, and names only fields that exist', () => {
    const types = Object.values(apiSchema.getTypeMap()).filter((type) => isObjectType(type) && !type.name.startsWith('__'));
    expect(types.map((type) => type.name).filter((name) => !(name in TYPE_TIERS))).toEqual([]);
    for (const name of Object.keys(FIELD_TIERS)) {
      const [type, field] = name.split('.');
      const found = apiSchema.getType(type!);
      expect(isObjectType(found) && field! in found.getFields(), name).toBe(true);
    }
  });

  it('caches a fetch for its shortest-lived field, and never a mutation', () => {
    const policy = new CachePolicy(DEFAULT_TIER_TTLS_S);
    expect(policy.planFetch(apiSchema, parse(CUSTOMERS))).toEqual({ kind: 'entities', ttlMsByType: new Map([['Customer', 600_000]]) });
    expect(policy.planFetch(apiSchema, parse(BALANCES))).toEqual({ kind: 'entities', ttlMsByType: new Map([['Customer', 5_000]]) });
    expect(policy.planFetch(apiSchema, parse('{ product(sku: "X") { name } }'))).toEqual({ kind: 'root', ttlMs: 3_600_000 });
    expect(policy.planFetch(apiSchema, parse('{ case(id: "1") { subject } }'))).toEqual({ kind: 'root', ttlMs: 5_000 });
    expect(policy.planFetch(apiSchema, parse('mutation { recordCaseUpdate(input: {}) { __typename } }'))).toEqual({ kind: 'none' });
    // A field the policy cannot see (not in the API schema) is never cached.
    expect(policy.planFetch(apiSchema, parse('{ product(sku: "X") { internalCost } }'))).toEqual({ kind: 'none' });
  });

  it("reads each entity type's key from the supergraph", () => {
    const keys = keyFieldsOf(sdl);
    expect(keys.get('Customer')).toEqual(['id']);
    expect(keys.get('Order')).toEqual(['number']);
    expect(keys.get('Asset')).toEqual(['serialNumber']);
  });
});

describe('the gateway cache', () => {
  it('fetches only the entities it does not hold, and answers in the order asked', async () => {
    const cache = newCache();
    const subgraph = fakeSubgraph();
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), subgraph.fetch);
    const answer = await cache.process('crm', AGENT, request(CUSTOMERS, ['3', '1', '4', '2']), subgraph.fetch);
    expect(subgraph.asked).toEqual([
      ['1', '2'],
      ['3', '4'],
    ]);
    expect(answer.data).toEqual({
      _entities: ['3', '1', '4', '2'].map((id) => ({ name: `name of ${id}` })),
    });
    const all = await cache.process('crm', AGENT, request(CUSTOMERS, ['2', '4']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(2);
    expect(all.data).toEqual({ _entities: [{ name: 'name of 2' }, { name: 'name of 4' }] });
  });

  it('shares answers between callers of the same scope, never across roles or portal customers', async () => {
    const cache = newCache();
    const subgraph = fakeSubgraph();
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1']), subgraph.fetch);
    await cache.process('crm', OTHER_AGENT, request(CUSTOMERS, ['1']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(1);
    await cache.process('crm', SALES, request(CUSTOMERS, ['1']), subgraph.fetch);
    await cache.process('crm', PORTAL_A, request(CUSTOMERS, ['1']), subgraph.fetch);
    await cache.process('crm', PORTAL_B, request(CUSTOMERS, ['1']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(4);
    // And each subgraph's answer stays its own.
    await cache.process('erp', AGENT, request(CUSTOMERS, ['1']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(5);
  });

  it('keeps errors with their entity and caches neither failed nor null entities', async () => {
    const cache = newCache();
    let calls = 0;
    const fetch = async (options: GraphQLDataSourceProcessOptions) => {
      calls++;
      const ids = (options.request.variables!.representations as Array<{ id: string }>).map((r) => r.id);
      return {
        data: { _entities: ids.map((id) => (id === 'gone' ? null : { name: id === 'bad' ? null : `name of ${id}` })) },
        errors: ids.flatMap((id, index) =>
          id === 'bad' ? [{ message: 'Not authorized', path: ['_entities', index, 'name'], extensions: { code: 'FORBIDDEN' } }] : [],
        ),
      };
    };
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1']), fetch);
    const answer = await cache.process('crm', AGENT, request(CUSTOMERS, ['1', 'bad', 'gone']), fetch);
    expect(answer.data).toEqual({ _entities: [{ name: 'name of 1' }, { name: null }, null] });
    // The error points at the entity in the request the planner sent, not in the smaller one fetched.
    expect(answer.errors?.map((error) => error.path)).toEqual([['_entities', 1, 'name']]);
    await cache.process('crm', AGENT, request(CUSTOMERS, ['bad', 'gone']), fetch);
    expect(calls).toBe(3);
  });

  it('drops one record, or a whole type, when told of a change', async () => {
    const cache = newCache();
    const subgraph = fakeSubgraph();
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), subgraph.fetch);
    await cache.invalidate('Customer', ['1']);
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), subgraph.fetch);
    expect(subgraph.asked.at(-1)).toEqual(['1']);
    await cache.invalidate('Customer');
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), subgraph.fetch);
    expect(subgraph.asked.at(-1)).toEqual(['1', '2']);
  });

  it('serves volatile fields no longer than the bound', async () => {
    const store = createCacheStore({ kind: 'memory', maxBytes: 1_000_000 }, { logger, timeoutMs: 50, backoffMs: 1_000 });
    const cache = settled(new EntityCache(store, { ...DEFAULT_TIER_TTLS_S, volatile: 0.2 }, logger));
    cache.setSchema(apiSchema, sdl);
    const subgraph = fakeSubgraph((id) => ({ openBalance: { amount: Number(id) } }));
    await cache.process('erp', AGENT, request(BALANCES, ['1']), subgraph.fetch);
    await cache.process('erp', AGENT, request(BALANCES, ['1']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    await cache.process('erp', AGENT, request(BALANCES, ['1']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(2);
  });
});

describe('root fetches in the gateway cache', () => {
  const PRODUCT = 'query($sku: ID!){product(sku: $sku){name}}';
  const rootRequest = (query: string, variables: Record<string, unknown>) =>
    ({
      kind: INCOMING_OPERATION,
      request: { query, variables },
    }) as unknown as GraphQLDataSourceProcessOptions;

  it('files a look-up by key with its record, so a change notice for the record drops it', async () => {
    const cache = newCache();
    let calls = 0;
    const fetch = async (options: GraphQLDataSourceProcessOptions) => ({
      data: { product: { name: `${options.request.variables!.sku} v${++calls}` } },
    });
    expect((await cache.process('erp', AGENT, rootRequest(PRODUCT, { sku: 'A' }), fetch)).data).toEqual({ product: { name: 'A v1' } });
    expect((await cache.process('erp', OTHER_AGENT, rootRequest(PRODUCT, { sku: 'A' }), fetch)).data).toEqual({
      product: { name: 'A v1' },
    });
    expect((await cache.process('erp', AGENT, rootRequest(PRODUCT, { sku: 'B' }), fetch)).data).toEqual({ product: { name: 'B v2' } });
    await cache.invalidate('Product', ['A']);
    expect((await cache.process('erp', AGENT, rootRequest(PRODUCT, { sku: 'A' }), fetch)).data).toEqual({ product: { name: 'A v3' } });
    expect((await cache.process('erp', AGENT, rootRequest(PRODUCT, { sku: 'B' }), fetch)).data).toEqual({ product: { name: 'B v2' } });
  });
});

describe('hot entries and bursts', () => {
  it('fetches a hot entry again before it expires, so callers keep finding a fresh one', async () => {
    const store = createCacheStore({ kind: 'memory', maxBytes: 1_000_000 }, { logger, timeoutMs: 50, backoffMs: 1_000 });
    const cache = settled(new EntityCache(store, { ...DEFAULT_TIER_TTLS_S, volatile: 1 }, logger));
    cache.setSchema(apiSchema, sdl);
    let version = 0;
    const subgraph = fakeSubgraph(() => ({ openBalance: { amount: ++version } }));
    await cache.process('erp', AGENT, request(BALANCES, ['1']), subgraph.fetch);
    await new Promise((resolve) => setTimeout(resolve, 800)); // in the last 30% of its life
    const beforeExpiry = await cache.process('erp', AGENT, request(BALANCES, ['1']), subgraph.fetch);
    expect(beforeExpiry.data).toEqual({ _entities: [{ openBalance: { amount: 1 } }] }); // still the live entry…
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(subgraph.asked).toHaveLength(2); // …while the next one was fetched in the background
    await new Promise((resolve) => setTimeout(resolve, 300)); // the first entry has expired by now
    const afterExpiry = await cache.process('erp', AGENT, request(BALANCES, ['1']), subgraph.fetch);
    expect(afterExpiry.data).toEqual({ _entities: [{ openBalance: { amount: 2 } }] });
    expect(subgraph.asked).toHaveLength(2);
  });

  it('sends identical fetches in flight at once to the subgraph once, each caller with its own copy', async () => {
    const cache = newCache();
    let calls = 0;
    const fetch = async (options: GraphQLDataSourceProcessOptions) => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      const ids = (options.request.variables!.representations as Array<{ id: string }>).map((r) => r.id);
      return { data: { _entities: ids.map((id) => ({ name: `name of ${id}` })) } };
    };
    const [first, second, third] = await Promise.all([
      cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), fetch),
      cache.process('crm', OTHER_AGENT, request(CUSTOMERS, ['1', '2']), fetch),
      cache.process('crm', SALES, request(CUSTOMERS, ['1', '2']), fetch), // another scope: its own fetch
    ]);
    expect(calls).toBe(2);
    expect(second!.data).toEqual(first!.data);
    (first!.data as { _entities: Array<{ name: string }> })._entities[0]!.name = 'changed by the first caller';
    expect((second!.data as { _entities: Array<{ name: string }> })._entities[0]!.name).toBe('name of 1');
    expect(third!.data).toEqual({ _entities: [{ name: 'name of 1' }, { name: 'name of 2' }] });
  });
});

describe('what the cache never keeps', () => {
  const slowSubgraph = (ms: number, answer: (id: string) => unknown = (id) => ({ name: `name of ${id}` })) => {
    const asked: string[][] = [];
    const fetch = async (options: GraphQLDataSourceProcessOptions) => {
      const ids = (options.request.variables!.representations as Array<{ id: string }>).map((r) => r.id);
      asked.push(ids);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { data: { _entities: ids.map(answer) } };
    };
    return { asked, fetch };
  };

  it('an answer fetched before a change notice, nor the variants the notice dropped', async () => {
    const cache = newCache();
    const fast = fakeSubgraph();
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1']), fast.fetch);
    const slow = slowSubgraph(100);
    const inFlight = cache.process('crm', SALES, request(CUSTOMERS, ['1']), slow.fetch);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await cache.invalidate('Customer', ['1']); // while the sales rep's fetch is under way
    await inFlight;
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1']), fast.fetch);
    await cache.process('crm', SALES, request(CUSTOMERS, ['1']), slow.fetch);
    expect(fast.asked).toHaveLength(2); // the agent's dropped variant did not come back
    expect(slow.asked).toHaveLength(2); // nor was the answer fetched before the notice kept
  });

  it('an answer whose lifetime ran out while it was being fetched', async () => {
    const store = createCacheStore({ kind: 'memory', maxBytes: 1_000_000 }, { logger, timeoutMs: 50, backoffMs: 1_000 });
    const cache = settled(new EntityCache(store, { ...DEFAULT_TIER_TTLS_S, volatile: 0.1 }, logger));
    cache.setSchema(apiSchema, sdl);
    const slow = slowSubgraph(150, (id) => ({ openBalance: { amount: Number(id) } }));
    await cache.process('erp', AGENT, request(BALANCES, ['1']), slow.fetch);
    await cache.process('erp', AGENT, request(BALANCES, ['1']), slow.fetch);
    expect(slow.asked).toHaveLength(2);
  });

  it('what the executor merged into an answer after the cache handed it over', async () => {
    const cache = newCache();
    const subgraph = fakeSubgraph();
    const first = await cache.process('crm', AGENT, request(CUSTOMERS, ['1']), subgraph.fetch);
    (first.data as { _entities: Array<Record<string, unknown>> })._entities[0]!.openBalance = { amount: 1 };
    await cache.flush();
    const again = await cache.process('crm', AGENT, request(CUSTOMERS, ['1']), subgraph.fetch);
    expect(subgraph.asked).toHaveLength(1);
    expect(again.data).toEqual({ _entities: [{ name: 'name of 1' }] });
  });

  it('entities of an answer with an error that names none of them', async () => {
    const cache = newCache();
    let calls = 0;
    const fetch = async (options: GraphQLDataSourceProcessOptions) => {
      calls++;
      const ids = (options.request.variables!.representations as Array<{ id: string }>).map((r) => r.id);
      return {
        data: { _entities: ids.map(() => ({ name: null })) },
        errors: [{ message: 'Something failed', extensions: { code: 'INTERNAL' } }],
      };
    };
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), fetch);
    await cache.process('crm', AGENT, request(CUSTOMERS, ['1', '2']), fetch);
    expect(calls).toBe(2);
  });

  it('one answer for representations that differ beyond their key (@requires fields)', async () => {
    const cache = newCache();
    const SLA = 'query($representations:[_Any!]!){_entities(representations:$representations){...on Contract{sla{name}}}}';
    const asked: unknown[] = [];
    const fetch = async (options: GraphQLDataSourceProcessOptions) => {
      const reps = options.request.variables!.representations as Array<{ supportTier: string }>;
      asked.push(reps);
      return { data: { _entities: reps.map((rep) => ({ sla: { name: `${rep.supportTier} SLA` } })) } };
    };
    const contract = (supportTier: string) =>
      ({
        kind: INCOMING_OPERATION,
        request: { query: SLA, variables: { representations: [{ __typename: 'Contract', id: 'K1', supportTier }] } },
      }) as unknown as GraphQLDataSourceProcessOptions;
    expect((await cache.process('support', AGENT, contract('GOLD'), fetch)).data).toEqual({ _entities: [{ sla: { name: 'GOLD SLA' } }] });
    expect((await cache.process('support', AGENT, contract('SILVER'), fetch)).data).toEqual({
      _entities: [{ sla: { name: 'SILVER SLA' } }],
    });
    expect((await cache.process('support', AGENT, contract('GOLD'), fetch)).data).toEqual({ _entities: [{ sla: { name: 'GOLD SLA' } }] });
    expect(asked).toHaveLength(2);
  });
});
