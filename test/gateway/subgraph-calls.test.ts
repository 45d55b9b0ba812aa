import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '../../gateway/src/config.ts';
import { startGateway } from '../../gateway/src/gateway.ts';
import { createInternalSigner } from '../../platform/internal-token.ts';
import { generateDevKeys } from '../../platform/keys.ts';
import { createLogger } from '../../platform/logger.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { composeSubgraphs, readSupergraphConfig } from '../../tools/lib/composition.ts';
import { startSubgraphProxy, type SubgraphProxy } from '../helpers/proxy.ts';
import { gatewayConfig, NO_CACHE, postGraphQL, startStack, type GraphQLResult, type Stack } from '../helpers/stack.ts';

type Cases = { cases: { nodes: { id: string; subject: string; customer: { id: string; name: string | null } | null }[] } };
const CASES_WITH_CUSTOMERS = '{ cases(first: 3) { nodes { id subject customer { id name } } } }';

/** A second gateway over the stack's subgraphs, with the CRM reached through `proxy`. */
async function gatewayThrough(stack: Stack, proxy: SubgraphProxy, overrides: Partial<GatewayConfig>) {
  const gateway = await startGateway(
    gatewayConfig({
      ...NO_CACHE,
      subgraphUrls: { crm: proxy.url, erp: stack.erp.url, support: stack.support.url },
      ...overrides,
    }),
    {
      logger: createLogger('gateway', 'silent'),
      keys: { issuerPublicKey: stack.keys.issuer.publicKey, internalPrivateKey: stack.keys.internal.privateKey },
    },
  );
  const post = async <T>(query: string) => postGraphQL<T>(gateway.url, query, {}, { authorization: await stack.bearer('support_agent') });
  return { gateway, post };
}

/** The CRM's part failed with SYSTEM_UNAVAILABLE naming it; the desk's part answered. */
function expectOnlyCrmLost(answer: GraphQLResult<Cases>, message: RegExp) {
  const nodes = answer.body.data?.cases.nodes ?? [];
  expect(nodes).toHaveLength(3);
  for (const node of nodes) {
    expect(node.subject).toEqual(expect.any(String));
    expect(node.customer?.name ?? null).toBeNull();
  }
  expect(answer.body.errors?.length).toBeGreaterThan(0);
  for (const error of answer.body.errors ?? []) {
    expect(error.extensions).toMatchObject({ code: 'SYSTEM_UNAVAILABLE', serviceName: 'crm' });
    expect(error.message).toMatch(message);
  }
}

describe('a subgraph call has one deadline', () => {
  let stack: Stack;
  let proxy: SubgraphProxy;
  let gateway: RunningService;
  let post: <T>(query: string) => Promise<GraphQLResult<T>>;
  const DEADLINE_MS = 1_500;
  beforeAll(async () => {
    stack = await startStack({ gateway: NO_CACHE });
    proxy = await startSubgraphProxy(stack.crm.url);
    ({ gateway, post } = await gatewayThrough(stack, proxy, { subgraphTimeoutMs: DEADLINE_MS }));
  });
  afterAll(async () => {
    await gateway?.stop();
    await proxy?.stop();
    await stack?.stop();
  });

  it('gives up on a subgraph that trickles its answer at the deadline, and the other systems still answer', async () => {
    expect((await post<Cases>(CASES_WITH_CUSTOMERS)).body.errors).toBeUndefined();
    proxy.setMode({ kind: 'trickle', everyMs: 100 });
    try {
      const started = performance.now();
      const answer = await post<Cases>(CASES_WITH_CUSTOMERS);
      const elapsed = performance.now() - started;
      expectOnlyCrmLost(answer, new RegExp(`did not answer within ${DEADLINE_MS} ms`));
      expect(elapsed).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
      expect(elapsed).toBeLessThan(DEADLINE_MS + 1_500);
    } finally {
      proxy.setMode({ kind: 'pass' });
    }
  });
});

describe('waiting for a connection to a subgraph', () => {
  let stack: Stack;
  let proxy: SubgraphProxy;
  let gateway: RunningService;
  let post: <T>(query: string) => Promise<GraphQLResult<T>>;
  // Long enough that a wait bounded only by the deadline would show.
  const DEADLINE_MS = 40_000;
  beforeAll(async () => {
    stack = await startStack({ gateway: NO_CACHE });
    proxy = await startSubgraphProxy(stack.crm.url);
    ({ gateway, post } = await gatewayThrough(stack, proxy, { subgraphTimeoutMs: DEADLINE_MS }));
  });
  afterAll(async () => {
    proxy?.release();
    await gateway?.stop();
    await proxy?.stop();
    await stack?.stop();
  });

  /** Sends `count` CRM calls the proxy holds, and waits until it holds them all. */
  async function holdConnections(count: number): Promise<Promise<unknown>[]> {
    proxy.setMode({ kind: 'hold' });
    // Each call another customer: identical fetches in flight would share one connection.
    const held = Array.from({ length: count }, (_, i) => post(`{ customer(id: "C${10001 + i}") { id name } }`));
    const until = Date.now() + 10_000;
    while (proxy.held() < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(proxy.held()).toBe(count);
    return held;
  }

  it('fails fast with SYSTEM_UNAVAILABLE when every connection is taken, instead of queueing to the deadline', async () => {
    const held = await holdConnections(64);
    try {
      const started = performance.now();
      const answer = await post<Cases>(CASES_WITH_CUSTOMERS);
      const elapsed = performance.now() - started;
      expectOnlyCrmLost(answer, /too busy/);
      // Far from the deadline: a second's wait for a connection at most.
      expect(elapsed).toBeLessThan(3_000);
      expect(proxy.held()).toBe(64);
    } finally {
      proxy.setMode({ kind: 'pass' });
      proxy.release();
      await Promise.all(held);
    }
  }, 30_000);

  it('signs a queued call’s token when it is sent, with more life than its deadline leaves', async () => {
    const held = await holdConnections(64);
    const before = proxy.requests.length;
    const queued = post<Cases>(CASES_WITH_CUSTOMERS);
    const sentAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 500));
    proxy.setMode({ kind: 'pass' });
    proxy.release();
    const answer = await queued;
    await Promise.all(held);
    expect(answer.body.errors).toBeUndefined();
    const arrivals = proxy.requests.slice(before);
    expect(arrivals.length).toBeGreaterThan(0);
    for (const arrival of arrivals) {
      const token = /^Bearer (.+)$/.exec(arrival.authorization ?? '')?.[1];
      expect(token).toBeTruthy();
      const lifeLeft = decodeJwt(token!).exp! * 1000 - arrival.at;
      const deadlineLeft = DEADLINE_MS - (arrival.at - sentAt);
      expect(lifeLeft).toBeGreaterThan(deadlineLeft);
    }
  }, 30_000);
});

describe('the size of a subgraph answer', () => {
  let stack: Stack;
  let proxy: SubgraphProxy;
  let gateway: RunningService;
  let post: <T>(query: string) => Promise<GraphQLResult<T>>;
  beforeAll(async () => {
    stack = await startStack({ gateway: NO_CACHE });
    proxy = await startSubgraphProxy(stack.crm.url);
    ({ gateway, post } = await gatewayThrough(stack, proxy, { subgraphTimeoutMs: 10_000, subgraphMaxResponseBytes: 64 * 1024 }));
  });
  afterAll(async () => {
    await gateway?.stop();
    await proxy?.stop();
    await stack?.stop();
  });

  it('refuses an answer larger than the limit while it arrives, and the other systems still answer', async () => {
    proxy.setMode({ kind: 'endless' });
    try {
      const started = performance.now();
      const answer = await post<Cases>(CASES_WITH_CUSTOMERS);
      const elapsed = performance.now() - started;
      const nodes = answer.body.data?.cases.nodes ?? [];
      expect(nodes).toHaveLength(3);
      for (const node of nodes) expect(node.customer?.name ?? null).toBeNull();
      expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'RESPONSE_TOO_LARGE', serviceName: 'crm' });
      expect(answer.text).not.toContain('127.0.0.1');
      // Read no further than the limit: the connection is dropped, long before the deadline.
      expect(elapsed).toBeLessThan(5_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(proxy.abandoned()).toBeGreaterThan(0);
      expect(proxy.bytesSent()).toBeLessThan(16 * 1024 * 1024);
    } finally {
      proxy.setMode({ kind: 'pass' });
    }
  });
});

describe('a subgraph refusing the request', () => {
  let stack: Stack;
  let gateway: RunningService;
  let dir: string;
  beforeAll(async () => {
    stack = await startStack({ gateway: NO_CACHE });
    // The gateway serves a supergraph a step ahead of the desk's deployment: one field more.
    const subgraphs = readSupergraphConfig(new URL('../../schema/supergraph.yaml', import.meta.url).pathname).map((subgraph) =>
      subgraph.name === 'support'
        ? { ...subgraph, sdl: subgraph.sdl.replace('  subject: String!\n', '  subject: String!\n  channel: String\n') }
        : subgraph,
    );
    const composed = composeSubgraphs(subgraphs);
    if (!composed.ok) throw new Error(composed.errors.join('\n'));
    dir = mkdtempSync(join(tmpdir(), 'concord-skew-'));
    writeFileSync(join(dir, 'supergraph.graphql'), composed.supergraphSdl);
    gateway = await startGateway(
      gatewayConfig({
        ...NO_CACHE,
        supergraphPath: join(dir, 'supergraph.graphql'),
        subgraphUrls: { crm: stack.crm.url, erp: stack.erp.url, support: stack.support.url },
      }),
      {
        logger: createLogger('gateway', 'silent'),
        keys: { issuerPublicKey: stack.keys.issuer.publicKey, internalPrivateKey: stack.keys.internal.privateKey },
      },
    );
  });
  afterAll(async () => {
    await gateway?.stop();
    // The desk was stopped by a test already.
    await Promise.all([stack?.crm.stop(), stack?.erp.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes on its own error code (a 400), not SYSTEM_UNAVAILABLE, and the other systems still answer', async () => {
    const answer = await postGraphQL<{ case: unknown; customer: { name: string } | null }>(
      gateway.url,
      '{ case(id: "1") { id channel } customer(id: "C10001") { name } }',
      {},
      { authorization: await stack.bearer('support_agent') },
    );
    expect(answer.body.data?.customer?.name).toEqual(expect.any(String));
    expect(answer.body.errors).toHaveLength(1);
    expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', serviceName: 'support' });
    expect(answer.body.errors?.[0]?.message).toMatch(/channel/);
    expect(answer.text).not.toMatch(/127\.0\.0\.1|stacktrace/);
  });

  it('still reports a system that fails (a 5xx, or down) as SYSTEM_UNAVAILABLE', async () => {
    await stack.support.stop();
    const answer = await postGraphQL<{ case: unknown; customer: { name: string } | null }>(
      gateway.url,
      '{ case(id: "1") { id } customer(id: "C10001") { name } }',
      {},
      { authorization: await stack.bearer('support_agent') },
    );
    expect(answer.body.data?.customer?.name).toEqual(expect.any(String));
    expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'SYSTEM_UNAVAILABLE', serviceName: 'support' });
  });
});

describe('internal tokens for a call', () => {
  it('always have more life left than the caller asks for, however long the deadline', async () => {
    const keys = await generateDevKeys();
    const sign = createInternalSigner(keys.internal.privateKey);
    const identity = { subject: 'ann@example.com', roles: ['support_agent'] as const, customerId: null };
    for (const minLifeMs of [0, 10_000, 25_000, 60_000, 10_000]) {
      const token = await sign({ ...identity, roles: [...identity.roles] }, 'crm', minLifeMs);
      expect(decodeJwt(token).exp! * 1000 - Date.now()).toBeGreaterThan(minLifeMs);
    }
  });
});
