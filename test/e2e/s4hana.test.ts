import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import { NO_CACHE, operation, returnableCase, seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { startS4HanaServer, type S4HanaServer } from '../vendors/s4hana/server.ts';

const CASE_CONTEXT = operation('agent-console', 'CaseContext');
const CASE_QUEUE = operation('agent-console', 'CaseQueue');
const CREATE = operation('agent-console', 'CreateReturnAuthorization');

/**
 * The graph with the ERP on SAP S/4HANA Cloud (ERP_CONNECTOR=s4hana), pointed at an
 * S/4HANA-shaped server holding the same demo ERP, with OAuth client credentials: CaseContext
 * and CaseQueue answer as on the embedded ERP, in a bounded number of OData requests, and a
 * return authorized from a case becomes one customer return there, written under a CSRF token.
 */
describe('the graph with the ERP on S/4HANA', () => {
  let s4: S4HanaServer;
  let vendor: Stack;
  let embedded: Stack;
  const dbs = seededDatabases();

  beforeAll(async () => {
    s4 = await startS4HanaServer({ erp: dbs.erp });
    vendor = await startStack({
      dbs,
      // Every field from its system: the requests counted are the uncached ones.
      gateway: NO_CACHE,
      erpEnv: {
        ERP_CONNECTOR: 's4hana',
        S4HANA_BASE_URL: s4.baseUrl,
        S4HANA_TOKEN_URL: s4.tokenUrl,
        S4HANA_CLIENT_ID: s4.clientId,
        S4HANA_CLIENT_SECRET: s4.clientSecret,
        S4HANA_COMPANY_CURRENCY: s4.companyCurrency,
        ERP_RETRIES: '1',
        ERP_TIMEOUT_MS: '5000',
      },
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200' },
    });
    embedded = await startStack();
  }, 90_000);
  afterAll(async () => {
    await vendor?.stop();
    await embedded?.stop();
    await s4?.close();
  });

  const odataRequests = (from: number) => s4.requests.slice(from).filter((request) => request.service !== null).length;

  it('answers CaseContext as on the embedded ERP', async () => {
    const { caseId } = returnableCase(dbs);
    const before = s4.requests.length;
    const onS4 = await vendor.queryAs<{ case: unknown }>('support_agent', CASE_CONTEXT, { id: caseId });
    const spent = odataRequests(before);
    const onEmbedded = await embedded.queryAs<{ case: unknown }>('support_agent', CASE_CONTEXT, { id: caseId });
    expect(onS4.body.errors, JSON.stringify(onS4.body.errors)).toBeUndefined();
    expect(onS4.body).toEqual(onEmbedded.body);
    if (process.env.PRINT_VENDOR_CALLS) console.log(`CaseContext S/4HANA requests: ${spent}`);
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(12);
  });

  it('makes the same S/4HANA requests for CaseQueue with 10 cases as with 100, answering as on the embedded ERP', async () => {
    const calls = async (first: number) => {
      const variables = { first, filter: { status: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD', 'SOLVED', 'CLOSED'] } };
      const before = s4.requests.length;
      const served = await vendor.queryAs<{ cases: { nodes: unknown[] } }>('support_agent', CASE_QUEUE, variables);
      const spent = odataRequests(before);
      const expected = await embedded.queryAs<{ cases: { nodes: unknown[] } }>('support_agent', CASE_QUEUE, variables);
      expect(served.body.errors, JSON.stringify(served.body.errors)).toBeUndefined();
      expect(served.body).toEqual(expected.body);
      expect(served.body.data!.cases.nodes).toHaveLength(first);
      return spent;
    };
    // The first $batch fetches the session's CSRF token (one GET, once per session): past it, the page size changes nothing.
    await calls(100);
    const ten = await calls(10);
    if (process.env.PRINT_VENDOR_CALLS) console.log(`CaseQueue S/4HANA requests: ${ten}`);
    expect(await calls(100)).toBe(ten);
  });

  it('authorizes a return: one customer return in S/4HANA, written under a CSRF token', async () => {
    const { caseId, serialNumber } = returnableCase(dbs, { used: new Set() });
    const { body } = await vendor.queryAs<{ createReturnAuthorization: any }>('support_agent', CREATE, {
      input: {
        caseId,
        resolution: 'REPLACE',
        idempotencyKey: 's4hana-return',
        lines: [{ serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
      },
    });
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    expect(body.data!.createReturnAuthorization.errors).toEqual([]);
    const rma = body.data!.createReturnAuthorization.returnAuthorization.number as string;
    const engine = vendor.processes.engine;
    const [workflow] = await engine.list({ type: RETURN_WORKFLOW, limit: 10 });
    const done = await engine.waitFor(workflow!.id, (instance) => instance.state === 'done' || instance.state === 'failed', 20_000);
    expect(done?.state, done?.lastError ?? '').toBe('done');
    const returns = s4.customerReturns().filter((row) => JSON.stringify(row).includes(caseId));
    expect(returns, rma).toHaveLength(1);
    const writes = s4.requests.filter((request) => request.method === 'POST' && request.service !== null);
    expect(writes.length).toBeGreaterThan(0);
    for (const write of writes) expect(write.csrfToken).not.toBeNull();
  });
});
