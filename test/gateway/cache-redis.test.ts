import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_TTLS_S } from '../../gateway/src/cache/policy.ts';
import { startGateway } from '../../gateway/src/gateway.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { createLogger } from '../../platform/logger.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { caseSubjectChanged, gatewayConfig, operation, postGraphQL, startStack, type Stack, vendorCallsDuring } from '../helpers/stack.ts';

const SUBJECT = 'query($id: ID!) { case(id: $id) { id subject } }';

/**
 * Two gateway replicas sharing one Redis (a real redis-server): what one caches the other
 * serves, a change event on the broker reaches both, and Redis going away costs misses, never
 * errors or answers that hang.
 */
describe('the gateway cache on Redis, shared by two replicas', () => {
  let redis: RedisServer;
  let stack: Stack;
  let second: RunningService;
  let caseIds: string[];

  beforeAll(async () => {
    redis = await startRedis();
    const shared = {
      cache: { ...gatewayConfig().cache, store: 'redis' as const, redisUrl: redis.url, ttls: { ...DEFAULT_TIER_TTLS_S, volatile: 300 } },
    };
    // The desk's own feed publishes elsewhere: only the events a test publishes reach the gateways.
    stack = await startStack({
      gateway: shared,
      support: { broker: embeddedBroker({ file: ':memory:', logger: createLogger('broker', 'silent') }) },
    });
    second = await startGateway(
      gatewayConfig({ subgraphUrls: { crm: stack.crm.url, erp: stack.erp.url, support: stack.support.url }, ...shared }),
      {
        logger: createLogger('gateway', 'silent'),
        keys: { issuerPublicKey: stack.keys.issuer.publicKey, internalPrivateKey: stack.keys.internal.privateKey },
        broker: stack.broker,
      },
    );
    const queue = await stack.query<{ cases: { nodes: Array<{ id: string }> } }>(operation('agent-console', 'CaseQueue'), { first: 50 });
    caseIds = queue.body.data!.cases.nodes.map((node) => node.id);
  });
  afterAll(async () => {
    await second?.stop();
    await stack?.stop();
    await redis?.stop();
  });

  const onSecond = async (query: string, variables: Record<string, unknown>) =>
    postGraphQL<Record<string, unknown>>(second.url, query, variables, { authorization: await stack.bearer('support_agent') });

  const vendorCalls = (run: () => Promise<unknown>) => vendorCallsDuring([stack.crm, stack.erp, stack.support], run);
  /** Each replica's failed cache operations, to say why a test saw more vendor calls than it expected. */
  const cacheFailures = async () => {
    const lines = await Promise.all(
      [stack.gateway, second].map(async (gateway, i) => {
        const text = await (await fetch(gateway.url.replace(/\/graphql$/, '/metrics'))).text();
        const failed = text.split('\n').filter((line) => line.startsWith('concord_cache_failures_total'));
        return `replica ${i + 1} cache failures: ${failed.join(', ') || 'none'}`;
      }),
    );
    return lines.join('; ');
  };

  it('serves on one replica what the other cached', async () => {
    const id = caseIds[0]!;
    const first = await stack.query(operation('agent-console', 'CaseContext'), { id });
    expect(first.body.errors).toBeUndefined();
    await stack.gateway.cache?.flush(); // writes reach Redis after the answer
    let fromSecond: unknown;
    const calls = await vendorCalls(async () => {
      fromSecond = (await onSecond(operation('agent-console', 'CaseContext'), { id })).body;
    });
    expect(fromSecond).toEqual(first.body);
    expect(calls, `vendor calls on the second replica; ${await cacheFailures()}`).toBeLessThanOrEqual(1);
  });

  it('drops what a change event names on both replicas', async () => {
    const id = caseIds[1]!;
    await stack.query(SUBJECT, { id });
    await onSecond(SUBJECT, { id });
    stack.dbs.support.prepare('UPDATE tickets SET subject = ? WHERE id = ?').run('Changed behind the cache', Number(id));
    await stack.broker.publish([caseSubjectChanged(id)]);
    const deadline = Date.now() + 2_000;
    const fresh = async () =>
      (await stack.query<{ case: { subject: string } }>(SUBJECT, { id })).body.data!.case.subject === 'Changed behind the cache' &&
      JSON.stringify((await onSecond(SUBJECT, { id })).body.data) === JSON.stringify({ case: { id, subject: 'Changed behind the cache' } });
    while (!(await fresh())) {
      expect(Date.now(), 'both replicas answer the change within 2 s').toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it('degrades to misses while Redis is down, and caches again once it is back', async () => {
    const id = caseIds[2]!;
    const expected = (await stack.query(operation('agent-console', 'CaseContext'), { id })).body;
    await redis.stop();
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      let answer: Awaited<ReturnType<Stack['query']>> | undefined;
      // Without its store the gateway asks the systems again: the answer costs vendor calls, not errors.
      const calls = await vendorCalls(async () => {
        answer = await stack.query(operation('agent-console', 'CaseContext'), { id });
      });
      expect(answer!.body).toEqual(expected);
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(calls, 'vendor calls of a CaseContext while Redis is down').toBeGreaterThan(1);
    }
    await redis.start();
    // The client reconnects with backoff; then a query is cached again and the next is served from it.
    const deadline = Date.now() + 15_000;
    let warm = Infinity;
    while (Date.now() < deadline && warm > 1) {
      await stack.query(operation('agent-console', 'CaseContext'), { id });
      await new Promise((resolve) => setTimeout(resolve, 200));
      warm = await vendorCalls(() => stack.query(operation('agent-console', 'CaseContext'), { id }));
    }
    expect(warm, `vendor calls of a warm CaseContext after Redis came back; ${await cacheFailures()}`).toBeLessThanOrEqual(1);
  });
});
