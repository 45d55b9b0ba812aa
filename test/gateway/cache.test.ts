import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../gateway/src/gateway.ts';
import { DEFAULT_TIER_TTLS_S } from '../../gateway/src/cache/policy.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { createLogger } from '../../platform/logger.ts';
import {
  caseSubjectChanged,
  gatewayConfig,
  graphqlRequestsServed,
  NO_CACHE,
  operation,
  postGraphQL,
  startStack,
  type Stack,
  vendorCallsDuring,
} from '../helpers/stack.ts';

const SUBJECT = 'query($id: ID!) { case(id: $id) { id subject } }';

/**
 * The gateway's cache over the whole graph: what a warm cache costs the systems, that it answers
 * exactly as they do, that the systems' change events take effect at once, for the entity they
 * name, and that what is cached keeps answering while its system is down.
 */
describe('the gateway cache, end to end', () => {
  let stack: Stack;
  let uncached: RunningService;
  let caseIds: string[];

  beforeAll(async () => {
    stack = await startStack({
      // The desk's own feed publishes elsewhere: only the events a test publishes reach the gateway.
      support: { broker: embeddedBroker({ file: ':memory:', logger: createLogger('broker', 'silent') }) },
      gateway: {
        // A long bound on volatile data, so that only an event can explain a fresh answer.
        cache: { ...gatewayConfig().cache, ttls: { ...DEFAULT_TIER_TTLS_S, volatile: 300 } },
      },
    });
    uncached = await startGateway(
      gatewayConfig({ subgraphUrls: { crm: stack.crm.url, erp: stack.erp.url, support: stack.support.url }, ...NO_CACHE }),
      {
        logger: createLogger('gateway', 'silent'),
        keys: { issuerPublicKey: stack.keys.issuer.publicKey, internalPrivateKey: stack.keys.internal.privateKey },
      },
    );
    const queue = await stack.query<{ cases: { nodes: Array<{ id: string }> } }>(operation('agent-console', 'CaseQueue'), { first: 100 });
    caseIds = queue.body.data!.cases.nodes.map((node) => node.id);
  });
  afterAll(async () => {
    await uncached?.stop();
    await stack?.stop();
  });

  const vendorCalls = (run: () => Promise<unknown>) => vendorCallsDuring([stack.crm, stack.erp, stack.support], run);

  it('answers CaseContext and CaseQueue exactly as the systems do, cold and warm', async () => {
    const asAgent = { authorization: await stack.bearer('support_agent') };
    for (const [name, variables] of [
      ['CaseQueue', { first: 100 }],
      ...caseIds.slice(0, 8).map((id) => ['CaseContext', { id }] as const),
    ] as const) {
      const fromSystems = await postGraphQL(uncached.url, operation('agent-console', name), variables, asAgent);
      const cold = await stack.query(operation('agent-console', name), variables);
      const warm = await stack.query(operation('agent-console', name), variables);
      expect(fromSystems.body.errors).toBeUndefined();
      expect(cold.body).toEqual(fromSystems.body);
      expect(warm.body).toEqual(fromSystems.body);
    }
  });

  it('costs a warm CaseContext at most one vendor call, where a cold one costs many', async () => {
    const id = caseIds[20]!;
    const cold = await vendorCalls(() => stack.query(operation('agent-console', 'CaseContext'), { id }));
    const warm = await vendorCalls(() => stack.query(operation('agent-console', 'CaseContext'), { id }));
    expect(cold).toBeGreaterThan(5);
    expect(warm).toBeLessThanOrEqual(1);
    // A second agent shares the first one's answers; a sales rep (other field rules) does not.
    const otherAgent = await vendorCalls(() =>
      stack.queryAs(
        { subject: 'other-agent@example.com', roles: ['support_agent'], customerId: null },
        operation('agent-console', 'CaseContext'),
        {
          id,
        },
      ),
    );
    expect(otherAgent).toBeLessThanOrEqual(1);
  });

  /** Publishes what the desk's feed publishes when a case changes (subgraphs/support), as the desk's own source. */
  const caseChanged = (id: string, version: number) => stack.broker.publish([caseSubjectChanged(id, version)]);
  const subjectOf = async (id: string) => (await stack.query<{ case: { subject: string } }>(SUBJECT, { id })).body.data!.case.subject;
  const eventually = async (check: () => Promise<boolean>, ms = 2_000) => {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return Date.now() - started;
  };

  it('drops the case an event names, and only that case', async () => {
    const [id, other] = [caseIds[30]!, caseIds[31]!];
    const before = await subjectOf(id);
    const otherBefore = await subjectOf(other);
    // Changed behind the cache, with no event: the cached subject is served.
    stack.dbs.support.prepare('UPDATE tickets SET subject = ? WHERE id IN (?, ?)').run('Changed in the desk', Number(id), Number(other));
    expect(await subjectOf(id)).toBe(before);
    await caseChanged(id, Date.now());
    const tookMs = await eventually(async () => (await subjectOf(id)) === 'Changed in the desk');
    expect(tookMs).toBeLessThan(1_000);
    // The other case was not named: still the cached copy, and the systems were not asked for it.
    expect(await vendorCalls(async () => expect(await subjectOf(other)).toBe(otherBefore))).toBe(0);
  });

  it("never serves one portal customer's cached case to another", async () => {
    const row = stack.dbs.support
      .prepare(`SELECT t.id, o.external_id AS customer FROM tickets t JOIN organizations o ON o.id = t.organization_id LIMIT 1`)
      .get() as { id: number; customer: string };
    const other = stack.dbs.support.prepare('SELECT external_id FROM organizations WHERE external_id <> ? LIMIT 1').get(row.customer) as {
      external_id: string;
    };
    const detail = operation('portal', 'CaseDetail');
    const own = await stack.queryAs<{ case: { id: string; subject: string } }>(
      { role: 'portal_customer', customer: row.customer },
      detail,
      { id: String(row.id) },
    );
    expect(own.body.errors).toBeUndefined();
    expect(own.body.data).toMatchObject({ case: { id: String(row.id) } });
    const stranger = await stack.queryAs({ role: 'portal_customer', customer: other.external_id }, detail, { id: String(row.id) });
    expect(stranger.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(JSON.stringify(stranger.body.data ?? null)).not.toContain(own.body.data!.case.subject);
  });

  it('serves Concord’s own processes from the systems, never from the cache: they decide on what they read', async () => {
    const id = caseIds[41]!;
    const process = { subject: 'concord-processes', roles: ['integration' as const], customerId: null };
    const ask = () => stack.queryAs(process, operation('agent-console', 'CaseContext'), { id });
    expect((await ask()).body.errors).toBeUndefined();
    const warm = await vendorCalls(ask);
    // An agent's second ask is served from the cache; the process's asks every system again.
    const agentWarm = await vendorCalls(async () => {
      await stack.query(operation('agent-console', 'CaseContext'), { id });
      await stack.query(operation('agent-console', 'CaseContext'), { id });
    });
    expect(warm).toBeGreaterThanOrEqual(3);
    expect(agentWarm).toBeLessThan(2 * warm);
    // A change the cache has not heard of yet: the process sees it at once.
    stack.dbs.support.prepare(`UPDATE tickets SET subject = 'Changed behind the cache' WHERE id = ?`).run(Number(id));
    const fresh = await ask();
    expect(JSON.stringify(fresh.body.data)).toContain('Changed behind the cache');
    const cached = await stack.query(operation('agent-console', 'CaseContext'), { id });
    expect(JSON.stringify(cached.body.data)).not.toContain('Changed behind the cache');
  });

  it('keeps answering from the cache while a system is down', async () => {
    const id = caseIds[40]!;
    const warm = await stack.query(operation('agent-console', 'CaseContext'), { id });
    expect(warm.body.errors).toBeUndefined();
    await stack.crm.stop();
    const whileDown = await stack.query(operation('agent-console', 'CaseContext'), { id });
    expect(whileDown.body).toEqual(warm.body);
  });
});

describe('whole answers in the gateway cache', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ gateway: { cache: { ...gatewayConfig().cache, ttls: { ...DEFAULT_TIER_TTLS_S, volatile: 2 } } } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const subgraphRequests = async () =>
    (await Promise.all([stack.crm, stack.erp, stack.support].map((service) => graphqlRequestsServed(service.url)))).reduce(
      (a, b) => a + b,
      0,
    );

  it('serves the same query of the same scope again without asking any subgraph, and tells no shared cache to keep it', async () => {
    const first = await stack.query(operation('agent-console', 'CaseQueue'), { first: 25 });
    await stack.gateway.cache?.flush();
    const before = await subgraphRequests();
    const again = await stack.query(operation('agent-console', 'CaseQueue'), { first: 25 });
    expect(await subgraphRequests()).toBe(before);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('cache-control')).toBe('private, no-store');
    expect(first.headers.get('age')).toBeNull();
    expect(again.headers.get('age')).not.toBeNull(); // served whole, not rebuilt from entities
    // Another scope (a lead) gets its own answer from the subgraphs.
    await stack.queryAs('support_lead', operation('agent-console', 'CaseQueue'), { first: 25 });
    expect(await subgraphRequests()).toBeGreaterThan(before);
  });

  it('drops on a change notice only the whole answers that hold what changed', async () => {
    const [a, b] = (
      stack.dbs.support.prepare("SELECT id FROM tickets WHERE status = 'open' ORDER BY id DESC LIMIT 2").all() as { id: number }[]
    ).map((row) => String(row.id));
    const context = operation('agent-console', 'CaseContext');
    const queue = operation('agent-console', 'CaseQueue');
    const ask = (query: string, variables: Record<string, unknown>) => stack.query(query, variables);
    // Built, stored, then served whole (an Age header) — within the 2 s the volatile tier allows here.
    await Promise.all([ask(context, { id: a! }), ask(context, { id: b! }), ask(queue, { first: 10 })]);
    await stack.gateway.cache?.flush();
    for (const [query, variables] of [
      [context, { id: a! }],
      [context, { id: b! }],
      [queue, { first: 10 }],
    ] as const) {
      expect((await ask(query, variables)).headers.get('age'), JSON.stringify(variables)).not.toBeNull();
    }
    await stack.broker.publish([caseSubjectChanged(a!)]);
    const started = Date.now();
    while ((await ask(context, { id: a! })).headers.get('age') !== null) {
      if (Date.now() - started > 1_000) throw new Error('the answer holding the changed case was still served whole after 1 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // The other case's answer holds nothing that changed: still served whole, no system asked.
    const before = await subgraphRequests();
    const other = await ask(context, { id: b! });
    expect(other.headers.get('age')).not.toBeNull();
    expect(await subgraphRequests()).toBe(before);
    // A queue is a search: no one case names all it holds, so any change concerns it.
    expect((await ask(queue, { first: 10 })).headers.get('age')).toBeNull();
  });

  it('keeps a whole answer no longer than its shortest-lived part', async () => {
    const id = (stack.dbs.support.prepare("SELECT id FROM tickets WHERE status = 'open' LIMIT 1").get() as { id: number }).id;
    const subject = async () => (await stack.query<{ case: { subject: string } }>(SUBJECT, { id: String(id) })).body.data!.case.subject;
    const original = await subject();
    stack.dbs.support.prepare('UPDATE tickets SET subject = ? WHERE id = ?').run('Changed, no notice sent', id);
    expect(await subject()).toBe(original);
    await new Promise((resolve) => setTimeout(resolve, 2_300)); // past the 2 s volatile bound
    expect(await subject()).toBe('Changed, no notice sent');
  });
});
