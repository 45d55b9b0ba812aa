import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_TTLS_S } from '../../gateway/src/cache/policy.ts';
import { startGateway } from '../../gateway/src/gateway.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { gatewayConfig, operation, postGraphQL, startStack, type Stack, vendorCallsDuring } from '../helpers/stack.ts';

const ZENDESK_SECRET = 'zendesk-signing-secret-for-tests';
const SUBJECT = 'query($id: ID!) { case(id: $id) { id subject } }';

/**
 * Two gateway replicas sharing one Redis (a real redis-server): what one caches the other
 * serves, a change notice to either reaches both, and Redis going away costs misses, never
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
      hooks: { zendeskSecret: ZENDESK_SECRET, businessCentralClientState: null, salesforceSecret: null },
    };
    stack = await startStack({ gateway: shared });
    second = await startGateway(
      gatewayConfig({ subgraphUrls: { crm: stack.crm.url, erp: stack.erp.url, support: stack.support.url }, ...shared }),
      {
        logger: createLogger('gateway', 'silent'),
        keys: { issuerPublicKey: stack.keys.issuer.publicKey, internalPrivateKey: stack.keys.internal.privateKey },
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

  it('applies a change notice sent to one replica on both', async () => {
    const id = caseIds[1]!;
    await stack.query(SUBJECT, { id });
    await onSecond(SUBJECT, { id });
    stack.dbs.support.prepare('UPDATE tickets SET subject = ? WHERE id = ?').run('Changed behind the cache', Number(id));
    const body = JSON.stringify({ type: 'zen:event-type:ticket.subject_changed', detail: { id } });
    const timestamp = new Date().toISOString();
    const answer = await fetch(second.url.replace(/\/graphql$/, '/hooks/zendesk'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-zendesk-webhook-signature': createHmac('sha256', ZENDESK_SECRET).update(timestamp).update(body).digest('base64'),
        'x-zendesk-webhook-signature-timestamp': timestamp,
      },
      body,
    });
    expect(answer.status).toBe(202);
    expect((await stack.query<{ case: { subject: string } }>(SUBJECT, { id })).body.data!.case.subject).toBe('Changed behind the cache');
    expect((await onSecond(SUBJECT, { id })).body.data).toEqual({ case: { id, subject: 'Changed behind the cache' } });
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
