import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../gateway/src/gateway.ts';
import { DEFAULT_TIER_TTLS_S } from '../../gateway/src/cache/policy.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import {
  gatewayConfig,
  graphqlRequestsServed,
  NO_CACHE,
  operation,
  postGraphQL,
  startStack,
  type Stack,
  vendorCallsDuring,
} from '../helpers/stack.ts';

const ZENDESK_SECRET = 'zendesk-signing-secret-for-tests';
const BC_CLIENT_STATE = 'bc-client-state-for-tests';
const SUBJECT = 'query($id: ID!) { case(id: $id) { id subject } }';

/**
 * The gateway's cache over the whole graph: what a warm cache costs the systems, that it answers
 * exactly as they do, that change notices from the systems take effect at once (and forged ones
 * do not), and that what is cached keeps answering while its system is down.
 */
describe('the gateway cache, end to end', () => {
  let stack: Stack;
  let uncached: RunningService;
  let caseIds: string[];
  const hooks = () => stack.gateway.url.replace(/\/graphql$/, '/hooks');

  beforeAll(async () => {
    stack = await startStack({
      gateway: {
        // A long bound on volatile data, so that only a change notice can explain a fresh answer.
        cache: { ...gatewayConfig().cache, ttls: { ...DEFAULT_TIER_TTLS_S, volatile: 300 } },
        hooks: { zendeskSecret: ZENDESK_SECRET, businessCentralClientState: BC_CLIENT_STATE, salesforceSecret: null },
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

  it('drops a case at once when Zendesk signs a change notice for it, and refuses a forged one', async () => {
    const id = caseIds[30]!;
    const before = await stack.query<{ case: { subject: string } }>(SUBJECT, { id });
    stack.dbs.support.prepare('UPDATE tickets SET subject = ? WHERE id = ?').run('Changed in the desk', Number(id));
    expect((await stack.query<{ case: { subject: string } }>(SUBJECT, { id })).body.data!.case.subject).toBe(
      before.body.data!.case.subject,
    );

    const body = JSON.stringify({ type: 'zen:event-type:ticket.subject_changed', detail: { id }, subject: `zen:ticket:${id}` });
    const timestamp = new Date().toISOString();
    const signature = (secret: string, at = timestamp) => createHmac('sha256', secret).update(at).update(body).digest('base64');
    const send = (headers: Record<string, string>) =>
      fetch(`${hooks()}/zendesk`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

    const forged = await send({
      'x-zendesk-webhook-signature': signature('not-the-secret'),
      'x-zendesk-webhook-signature-timestamp': timestamp,
    });
    expect(forged.status).toBe(401);
    const old = new Date(Date.now() - 3_600_000).toISOString();
    const replayed = await send({
      'x-zendesk-webhook-signature': signature(ZENDESK_SECRET, old),
      'x-zendesk-webhook-signature-timestamp': old,
    });
    expect(replayed.status).toBe(401);
    expect((await stack.query<{ case: { subject: string } }>(SUBJECT, { id })).body.data!.case.subject).toBe(
      before.body.data!.case.subject,
    );

    const signed = await send({
      'x-zendesk-webhook-signature': signature(ZENDESK_SECRET),
      'x-zendesk-webhook-signature-timestamp': timestamp,
    });
    expect(signed.status).toBe(202);
    expect((await stack.query<{ case: { subject: string } }>(SUBJECT, { id })).body.data!.case.subject).toBe('Changed in the desk');
  });

  it('answers the Business Central subscription handshake and drops a type on its notice', async () => {
    const handshake = await fetch(`${hooks()}/business-central?validationToken=abc%20123`, { method: 'POST' });
    expect(handshake.status).toBe(200);
    expect(await handshake.text()).toBe('abc 123');

    const sku = (stack.dbs.erp.prepare('SELECT number FROM items LIMIT 1').get() as { number: string }).number;
    const PRODUCT = 'query($sku: ID!) { product(sku: $sku) { sku name } }';
    await stack.query(PRODUCT, { sku });
    stack.dbs.erp.prepare('UPDATE items SET displayName = ? WHERE number = ?').run('Renamed in the ERP', sku);
    expect((await stack.query<{ product: { name: string } }>(PRODUCT, { sku })).body.data!.product.name).not.toBe('Renamed in the ERP');

    const notice = (clientState: string) =>
      fetch(`${hooks()}/business-central`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          value: [
            {
              subscriptionId: 'items-subscription',
              clientState,
              // A subscription lives three days; a notification past its expiry is refused.
              expirationDateTime: new Date(Date.now() + 3 * 86_400_000).toISOString(),
              resource: 'api/v2.0/companies(00000000-0000-0000-0000-000000000001)/items(5f7bbd5c-0000-0000-0000-000000000002)',
              changeType: 'updated',
              lastModifiedDateTime: new Date().toISOString(),
            },
          ],
        }),
      });
    expect((await notice('wrong-client-state-value')).status).toBe(401);
    expect((await stack.query<{ product: { name: string } }>(PRODUCT, { sku })).body.data!.product.name).not.toBe('Renamed in the ERP');
    expect((await notice(BC_CLIENT_STATE)).status).toBe(202);
    expect((await stack.query<{ product: { name: string } }>(PRODUCT, { sku })).body.data!.product.name).toBe('Renamed in the ERP');
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
