import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import { operation, returnableCase, seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { loadFreshdeskData, slaPolicyIdsOf, startFreshdeskServer, type FreshdeskServer } from '../vendors/freshdesk/server.ts';

const CASE_CONTEXT = operation('agent-console', 'CaseContext');
const CASE_QUEUE = operation('agent-console', 'CaseQueue');
const CREATE = operation('agent-console', 'CreateReturnAuthorization');
const API_KEY = 'fd-e2e-key';

/**
 * Freshdesk requests one CaseContext makes at most with a cold directory (measured: 11): the
 * ticket, its conversations, its company and requester, the agents, the SLA policies, and for the
 * customer's open case count a company search and a search of the account's open tickets (one
 * page per 30 of them: 4 on the demo desk, so this bound grows with the account's open tickets).
 */
const CASE_CONTEXT_REQUESTS = 12;
/**
 * Freshdesk requests one CaseQueue (the demo desk's 45 new and open cases) makes at most
 * (measured: 61): filter search pages, and each company and requester read once.
 */
const CASE_QUEUE_REQUESTS = 70;

/**
 * The graph with the support desk on Freshdesk (SUPPORT_CONNECTOR=freshdesk), pointed at a
 * Freshdesk-shaped server holding the same demo desk: CaseContext and CaseQueue answer as they
 * do on the embedded desk (Freshdesk keeps the ticket, agent and conversation ids), in a bounded
 * number of Freshdesk requests, and a return authorized from a ticket writes its private note
 * there.
 */
describe('the graph with the desk on Freshdesk', () => {
  let freshdesk: FreshdeskServer;
  let vendor: Stack;
  let embedded: Stack;
  const dbs = seededDatabases();

  beforeAll(async () => {
    freshdesk = await startFreshdeskServer({ data: loadFreshdeskData(dbs.support), apiKey: API_KEY });
    const policies = Object.entries(slaPolicyIdsOf(dbs.support))
      .map(([tier, id]) => `${tier}=${id}`)
      .join(',');
    vendor = await startStack({
      dbs,
      supportEnv: {
        SUPPORT_CONNECTOR: 'freshdesk',
        FRESHDESK_BASE_URL: freshdesk.url,
        FRESHDESK_API_KEY: API_KEY,
        FRESHDESK_CUSTOM_STATUSES: '6=NEW,7=ON_HOLD',
        FRESHDESK_SLA_POLICY_IDS: policies,
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
    await freshdesk?.close();
  });

  it('answers CaseContext as on the embedded desk, in a bounded number of Freshdesk requests', async () => {
    const { caseId } = returnableCase(dbs);
    const before = freshdesk.requests.length;
    const [onFreshdesk, onEmbedded] = await Promise.all([
      vendor.queryAs<{ case: any }>('support_agent', CASE_CONTEXT, { id: caseId }),
      embedded.queryAs<{ case: any }>('support_agent', CASE_CONTEXT, { id: caseId }),
    ]);
    const requests = freshdesk.requests.length - before;
    expect(onFreshdesk.body.errors, JSON.stringify(onFreshdesk.body.errors)).toBeUndefined();
    expect(onEmbedded.body.errors).toBeUndefined();
    expect(onFreshdesk.body.data!.case).toEqual(onEmbedded.body.data!.case);
    expect(onFreshdesk.body.data!.case.comments.length).toBeGreaterThan(0);
    console.info(`Freshdesk requests for one CaseContext: ${requests}`);
    expect(requests).toBeLessThanOrEqual(CASE_CONTEXT_REQUESTS);
  });

  it('answers CaseQueue as on the embedded desk, in a bounded number of Freshdesk requests', async () => {
    const before = freshdesk.requests.length;
    const [onFreshdesk, onEmbedded] = await Promise.all([
      vendor.queryAs<{ cases: any }>('support_agent', CASE_QUEUE, {}),
      embedded.queryAs<{ cases: any }>('support_agent', CASE_QUEUE, {}),
    ]);
    const requests = freshdesk.requests.length - before;
    expect(onFreshdesk.body.errors, JSON.stringify(onFreshdesk.body.errors)).toBeUndefined();
    expect(onFreshdesk.body.data!.cases).toEqual(onEmbedded.body.data!.cases);
    expect(onFreshdesk.body.data!.cases.nodes.length).toBeGreaterThan(0);
    console.info(`Freshdesk requests for one CaseQueue (${onFreshdesk.body.data!.cases.nodes.length} cases): ${requests}`);
    expect(requests).toBeLessThanOrEqual(CASE_QUEUE_REQUESTS);
  });

  it('authorizes a return from a ticket: the ERP return order, and its private note on the ticket', async () => {
    const { caseId, serialNumber } = returnableCase(dbs, { used: new Set() });
    const { body } = await vendor.queryAs<{ createReturnAuthorization: any }>('support_agent', CREATE, {
      input: {
        caseId,
        resolution: 'REPLACE',
        idempotencyKey: 'freshdesk-return',
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
    const notes = (freshdesk.data.conversations.get(Number(caseId)) ?? []).filter(
      (conversation) => conversation.private && conversation.body_text.includes(rma),
    );
    expect(notes).toHaveLength(1);
    expect(notes[0]!.user_id).toBe(freshdesk.apiAgent.id);
  });
});
