import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import { operation, returnableCase, seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { incidentNumber, loadServiceNowData, startServiceNowServer, sysIdOf, type ServiceNowServer } from '../vendors/servicenow/server.ts';

const CASE_CONTEXT = operation('agent-console', 'CaseContext');
const CREATE = operation('agent-console', 'CreateReturnAuthorization');
const CASE_QUEUE = operation('agent-console', 'CaseQueue');

/**
 * The graph with the support desk on ServiceNow (SUPPORT_CONNECTOR=servicenow), pointed at a
 * ServiceNow-shaped server holding the same demo desk: CaseContext answers as it does on the
 * embedded desk (the case id the digits of its incident number), and a return authorized from an
 * incident writes its work note there.
 */
describe('the graph with the desk on ServiceNow', () => {
  let servicenow: ServiceNowServer;
  let vendor: Stack;
  let embedded: Stack;
  const dbs = seededDatabases();

  beforeAll(async () => {
    servicenow = await startServiceNowServer({
      data: loadServiceNowData(dbs.support),
      credentials: { user: 'concord', password: 'sn-secret' },
    });
    vendor = await startStack({
      dbs,
      supportEnv: {
        SUPPORT_CONNECTOR: 'servicenow',
        SERVICENOW_BASE_URL: servicenow.url,
        SERVICENOW_USER: 'concord',
        SERVICENOW_PASSWORD: 'sn-secret',
        SUPPORT_RETRIES: '1',
        SUPPORT_TIMEOUT_MS: '5000',
      },
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200' },
    });
    embedded = await startStack();
  }, 90_000);
  afterAll(async () => {
    await vendor?.stop();
    await embedded?.stop();
    await servicenow?.close();
  });

  it('answers CaseContext as on the embedded desk, the case id the digits of its incident number', async () => {
    const { caseId } = returnableCase(dbs);
    const before = servicenow.requests.length;
    const [onServiceNow, onEmbedded] = await Promise.all([
      vendor.queryAs<{ case: any }>('support_agent', CASE_CONTEXT, { id: caseId }),
      embedded.queryAs<{ case: any }>('support_agent', CASE_CONTEXT, { id: caseId }),
    ]);
    expect(onServiceNow.body.errors, JSON.stringify(onServiceNow.body.errors)).toBeUndefined();
    expect(onEmbedded.body.errors).toBeUndefined();
    const served = onServiceNow.body.data!.case;
    const expected = onEmbedded.body.data!.case;
    // Case 123 is incident INC0000123.
    expect(served.id).toBe(caseId);
    // Agents, requesters and comments have ServiceNow's sys_ids; everything else is the same answer.
    const withoutDeskIds = (c: any) => ({
      ...c,
      assignee: c.assignee && { ...c.assignee, id: undefined },
      requester: c.requester && { ...c.requester, id: undefined },
      comments: c.comments.map((comment: any) => ({ ...comment, id: undefined })),
    });
    expect(withoutDeskIds(served)).toEqual(withoutDeskIds(expected));
    if (expected.assignee) expect(served.assignee.id).toBe(sysIdOf('sys_user', expected.assignee.id));
    // A handful of Table API requests, not one per field.
    const spent = servicenow.requests.length - before;
    if (process.env.PRINT_VENDOR_CALLS) console.log(`CaseContext ServiceNow requests: ${spent}`);
    expect(spent).toBeLessThanOrEqual(12);
  });

  it('makes the same ServiceNow requests for CaseQueue with 10 incidents as with 100, each answered as on the embedded desk', async () => {
    const calls = async (first: number) => {
      const variables = { first, filter: { status: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD', 'SOLVED', 'CLOSED'] } };
      const before = servicenow.requests.length;
      const [served, expected] = await Promise.all([
        vendor.queryAs<{ cases: { nodes: any[] } }>('support_agent', CASE_QUEUE, variables),
        embedded.queryAs<{ cases: { nodes: any[] } }>('support_agent', CASE_QUEUE, variables),
      ]);
      expect(served.body.errors, JSON.stringify(served.body.errors)).toBeUndefined();
      expect(served.body.data!.cases.nodes.map((node) => node.id)).toEqual(expected.body.data!.cases.nodes.map((node) => node.id));
      expect(served.body.data!.cases.nodes).toHaveLength(first);
      return servicenow.requests.length - before;
    };
    const ten = await calls(10);
    if (process.env.PRINT_VENDOR_CALLS) console.log(`CaseQueue ServiceNow requests: ${ten}`);
    expect(await calls(100)).toBe(ten);
    expect(ten).toBeGreaterThan(0);
  });

  it('authorizes a return from an incident: the ERP return order, and its work note on the incident', async () => {
    const { caseId, serialNumber } = returnableCase(dbs, { used: new Set() });
    const { body } = await vendor.queryAs<{ createReturnAuthorization: any }>('support_agent', CREATE, {
      input: {
        caseId,
        resolution: 'REPLACE',
        idempotencyKey: 'servicenow-return',
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
    const incident = servicenow.records('incident').find((record) => record.number === incidentNumber(caseId))!;
    const notes = servicenow
      .records('sys_journal_field')
      .filter((entry) => entry.element_id === incident.sys_id && entry.element === 'work_notes' && (entry.value ?? '').includes(rma));
    expect(notes).toHaveLength(1);
  });
});
