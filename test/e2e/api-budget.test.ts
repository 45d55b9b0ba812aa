import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import { operation, returnableCase, seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { loadZendeskData, startZendeskServer, type ZendeskServer } from '../vendors/zendesk/server.ts';

const CASE_CONTEXT = operation('agent-console', 'CaseContext');
const CREATE = operation('agent-console', 'CreateReturnAuthorization');

/**
 * The desk on a Zendesk account whose window is down to the share Concord keeps for agents: the
 * agents' queries are answered, the return's workflow step (background work, whose calls carry
 * concord-priority through the graph to the support subgraph) waits for the budget, and the
 * account is never refused.
 */
describe('a Zendesk account at its reserve', () => {
  const LIMIT = 200;
  const RESERVE = 0.5;
  let zendesk: ZendeskServer;
  let stack: Stack;
  const dbs = seededDatabases();

  beforeAll(async () => {
    zendesk = await startZendeskServer({
      data: loadZendeskData(dbs.support),
      credentials: { email: 'concord@acme.example', apiToken: 'zd-token' },
      rateLimit: { limit: LIMIT, windowMs: 8_000 },
    });
    stack = await startStack({
      dbs,
      supportEnv: {
        SUPPORT_CONNECTOR: 'zendesk',
        ZENDESK_BASE_URL: zendesk.url,
        ZENDESK_EMAIL: 'concord@acme.example',
        ZENDESK_API_TOKEN: 'zd-token',
        ZENDESK_ORDER_FIELD_ID: '360000000101',
        ZENDESK_SERIAL_FIELD_ID: '360000000102',
        SUPPORT_API_RESERVE: String(RESERVE),
        SUPPORT_RETRIES: '1',
      },
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '200', WORKFLOW_MAX_DELAY_MS: '1000' },
    });
  }, 90_000);
  afterAll(async () => {
    await stack?.stop();
    await zendesk?.close();
  });

  const waitingOnSupport = async () => {
    const text = await fetch(stack.support.url.replace(/\/graphql$/, '/metrics')).then((response) => response.text());
    const line = text.split('\n').find((l) => l.startsWith('concord_vendor_api_background_waiting{') && l.includes('system="support"'));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  it('answers agents while the return waits for the budget, and Zendesk refuses nothing', async () => {
    const { caseId, serialNumber } = returnableCase(dbs);
    // Concord learns the account's budget from an agent's query.
    expect((await stack.queryAs('support_agent', CASE_CONTEXT, { id: caseId })).body.errors).toBeUndefined();
    // A new window, of which other integrations have already spent all but Concord's reserve.
    zendesk.startRateLimitWindow(LIMIT * RESERVE);
    const windowEnds = Date.now() + 8_000;

    const { body } = await stack.queryAs<{ createReturnAuthorization: any }>('support_agent', CREATE, {
      input: {
        caseId,
        resolution: 'REPLACE',
        idempotencyKey: 'budget-return',
        lines: [{ serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
      },
    });
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    expect(body.data!.createReturnAuthorization.errors).toEqual([]);
    const rma = body.data!.createReturnAuthorization.returnAuthorization.number as string;

    // The workflow's desk step is held back: the support subgraph says it is waiting.
    let waiting = 0;
    for (let tries = 0; tries < 40 && waiting === 0; tries += 1) {
      waiting = await waitingOnSupport();
      if (waiting === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(waiting).toBeGreaterThan(0);

    // Meanwhile agents are answered from the reserve, at once.
    const started = Date.now();
    const answers = await Promise.all(
      [0, 1, 2, 3].map(() => stack.queryAs<{ case: { id: string } }>('support_agent', CASE_CONTEXT, { id: caseId })),
    );
    for (const answer of answers) {
      expect(answer.body.errors, JSON.stringify(answer.body.errors)).toBeUndefined();
      expect(answer.body.data!.case.id).toBe(caseId);
    }
    expect(Date.now()).toBeLessThan(windowEnds);
    expect(Date.now() - started).toBeLessThan(5_000);

    // The return is done once the budget allows, its note written once, and nothing was refused.
    const engine = stack.processes.engine;
    const [workflow] = await engine.list({ type: RETURN_WORKFLOW, limit: 10 });
    const done = await engine.waitFor(workflow!.id, (instance) => instance.state === 'done' || instance.state === 'failed', 60_000);
    expect(done?.state, done?.lastError ?? '').toBe('done');
    const notes = (zendesk.data.comments.get(Number(caseId)) ?? []).filter((comment) => comment.body.includes(rma));
    expect(notes).toHaveLength(1);
    expect(zendesk.requests.filter((request) => request.status === 429)).toEqual([]);
  }, 90_000);
});
