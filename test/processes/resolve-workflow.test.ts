import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConnectorError } from '../../platform/errors.ts';
import { ROLES, type Identity } from '../../platform/identity.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { createWorkflowEngine, type WorkflowDefinition, type WorkflowInstance } from '../../platform/workflow/engine.ts';
import { sqliteExecutor } from '../../platform/workflow/sql.ts';
import { RETURN_STEPS, RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import { operation, startStack, type Stack, type Who, returnableCase } from '../helpers/stack.ts';

const CREATE = operation('agent-console', 'CreateReturnAuthorization');
const RESOLVE = operation('ops-console', 'ResolveWorkflow');
const PARKED = operation('ops-console', 'ParkedWorkflows');

/** Switches that make a write fail, as if its system were down. */
const faults = { crmDown: false, confirmDown: false };

/** Undone by the test workflow's compensation, by instance id. */
const undone: string[] = [];

/** A workflow of the service whose first step can be undone and whose second fails while `confirmDown`. */
const UNDOABLE: WorkflowDefinition<{ customerId: string }> = {
  type: 'test-undoable',
  customerOf: (input) => input.customerId,
  steps: [
    {
      name: 'reserve',
      run: async () => ({ reserved: true }),
      compensate: async (context) => {
        undone.push(context.instanceId);
      },
    },
    {
      name: 'confirm',
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      run: async () => {
        if (faults.confirmDown) throw new Error('confirm: connection refused');
        return { confirmed: true };
      },
    },
  ],
};

/** A type an earlier version of the service ran: its instances are in the store, its steps are not in this service. */
const RETIRED: WorkflowDefinition = {
  type: 'test-retired',
  steps: [
    {
      name: 'old-step',
      retry: { maxAttempts: 1 },
      run: async () => {
        throw new Error('old-step: the system it wrote to is gone');
      },
    },
  ],
};

/** An operator with a name of their own, as the console's users are. */
const ANN: Identity = { subject: 'ann@ops.example', roles: ['integration_operator'], customerId: null };

interface Payload {
  workflow: {
    id: string;
    state: string;
    phase: string;
    currentStep: string | null;
    parkedReason: string | null;
    attempts: number;
    steps: { name: string; phase: string; state: string }[];
    history: { at: string; event: string; detail: string | null }[];
  } | null;
  errors: { code: string; message: string }[];
}

describe('resolveWorkflow: an operator decides on a parked workflow in the graph', () => {
  let stack: Stack;
  const sql = sqliteExecutor(openDatabase(':memory:'));
  const logLines: string[] = [];

  beforeAll(async () => {
    stack = await startStack({
      logLines,
      // Retries within tens of ms, parked after 6 attempts (about half a second).
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '6', RMA_AGENT_LIMIT: '20000' },
      processes: { sql, extraWorkflows: [UNDOABLE] },
      crm: {
        wrapConnector: (crm: CrmConnector): CrmConnector => ({
          ...crm,
          logActivity: (activity) =>
            faults.crmDown ? Promise.reject(new ConnectorError('crm', 'crm: connection refused')) : crm.logActivity(activity),
        }),
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    faults.crmDown = false;
    faults.confirmDown = false;
  });

  const engine = () => stack.processes.engine;

  async function resolve(who: Who, input: Record<string, unknown>) {
    const { status, body } = await stack.queryAs<{ resolveWorkflow: Payload }>(who, RESOLVE, { input });
    return { status, errors: body.errors, payload: body.data?.resolveWorkflow ?? null };
  }

  async function until(id: string, holds: (instance: WorkflowInstance) => boolean, ms = 10_000): Promise<WorkflowInstance> {
    const instance = await engine().waitFor(id, holds, ms);
    if (!instance || !holds(instance)) throw new Error(`workflow ${id} is ${instance?.state} at ${instance?.currentStep}`);
    return instance;
  }

  const used = new Set<string>();
  /** An open case about a unit under warranty, not used by an earlier test. */
  const candidate = () => returnableCase(stack.dbs, { used });

  const tasksAbout = (rma: string) =>
    stack.dbs.crm.prepare('SELECT Subject FROM Task WHERE Subject LIKE ?').all(`%${rma}%`) as { Subject: string }[];
  /** The operator's decision in a workflow's history (later entries may follow it: the service runs on). */
  const decision = (history: readonly { event: string; detail: string | null }[]) =>
    history.find((entry) => entry.event.startsWith('operator:'));
  const logged = (event: string) => logLines.map((line) => JSON.parse(line)).filter((entry) => entry.event === event);

  /** A return authorized while the CRM is down: its RMA made, its CRM activity parked after its attempts. */
  async function parkedReturn(key: string): Promise<{ id: string; rma: string }> {
    const c = candidate();
    faults.crmDown = true;
    const { body } = await stack.queryAs<{ createReturnAuthorization: any }>('support_agent', CREATE, {
      input: {
        caseId: c.caseId,
        resolution: 'REPLACE',
        idempotencyKey: key,
        lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
      },
    });
    expect(body.errors, key).toBeUndefined();
    const payload = body.data!.createReturnAuthorization;
    expect(payload.errors, key).toEqual([]);
    const rma = payload.returnAuthorization.number as string;
    const all = await engine().list({ type: RETURN_WORKFLOW, limit: 1000 });
    const found = all.find(
      (instance) => (instance.results[RETURN_STEPS.order] as { returnNumber?: string } | undefined)?.returnNumber === rma,
    );
    if (!found) throw new Error(`no workflow created ${rma}`);
    await until(found.id, (instance) => instance.state === 'failed');
    return { id: found.id, rma };
  }

  /** A test workflow parked at its second step. */
  async function parkedUndoable(key: string): Promise<string> {
    faults.confirmDown = true;
    const { instance } = await engine().start(UNDOABLE.type, { customerId: 'C10001' }, { idempotencyKey: key, correlationId: key });
    engine().wake();
    await until(instance.id, (it) => it.state === 'failed');
    return instance.id;
  }

  it('lists the parked return in the console, and an operator retries it once the CRM is back: done, their name and reason in the history', async () => {
    const { id, rma } = await parkedReturn('resolve-retry');
    const listed = await stack.queryAs<{ workflows: { nodes: any[] } }>('integration_operator', PARKED, {});
    expect(listed.body.errors).toBeUndefined();
    const node = listed.body.data!.workflows.nodes.find((n) => n.id === id);
    expect(node).toMatchObject({
      type: RETURN_WORKFLOW,
      state: 'FAILED',
      currentStep: RETURN_STEPS.activity,
      attempts: 6,
      parkedReason: expect.stringMatching(/crm-activity failed 6 times/),
    });
    expect(node.steps.map((step: any) => [step.name, step.state])).toEqual([
      [RETURN_STEPS.order, 'DONE'],
      [RETURN_STEPS.caseNote, 'DONE'],
      [RETURN_STEPS.activity, 'FAILED'],
    ]);
    expect(node.history.at(-1).event).toBe('parked');
    expect(listed.body.data!.workflows.nodes.every((n) => n.state === 'FAILED')).toBe(true);

    faults.crmDown = false;
    const { errors, payload } = await resolve(ANN, { id, action: 'RETRY', reason: 'CRM is back after the outage' });
    expect(errors).toBeUndefined();
    expect(payload!.errors).toEqual([]);
    // As the decision left it: running again, attempts from zero, no longer parked.
    expect(payload!.workflow).toMatchObject({ id, state: 'RUNNING', currentStep: RETURN_STEPS.activity, attempts: 0, parkedReason: null });
    expect(decision(payload!.workflow!.history)).toMatchObject({
      event: 'operator: retry',
      detail: 'retry crm-activity (by ann@ops.example): CRM is back after the outage',
    });

    await until(id, (instance) => instance.state === 'done');
    expect(tasksAbout(rma)).toHaveLength(1);
    const detail = (await engine().get(id))!;
    expect(detail.history.map((entry) => entry.event)).toContain('operator: retry');
    expect(detail.steps.map((step) => step.state)).toEqual(['done', 'done', 'done']);
    // The engine's audit line names the operator and the reason; the gateway's names the mutation and who sent it.
    expect(logged('workflow.operator').find((entry) => entry.workflowId === id)).toMatchObject({
      action: 'retry',
      operator: 'ann@ops.example',
      reason: 'CRM is back after the outage',
      audit: true,
    });
    expect(logged('mutation').find((entry) => entry.who === 'ann@ops.example')).toMatchObject({
      audit: true,
      what: 'resolveWorkflow',
      roles: ['integration_operator'],
      outcome: 'succeeded',
    });
  });

  it('skips the parked step (done by hand): the workflow is done without it, the CRM never written to', async () => {
    const { id, rma } = await parkedReturn('resolve-skip');
    // The CRM is still down: the operator logged the activity by hand.
    const { payload } = await resolve('integration_operator', { id, action: 'SKIP', reason: '  logged on the account by hand  ' });
    expect(payload!.errors).toEqual([]);
    expect(decision(payload!.workflow!.history)).toMatchObject({
      event: 'operator: skip',
      detail: 'skip crm-activity (by integration_operator@test.example): logged on the account by hand',
    });
    await until(id, (instance) => instance.state === 'done');
    const detail = (await engine().get(id))!;
    expect(detail.steps.map((step) => [step.name, step.state])).toEqual([
      [RETURN_STEPS.order, 'done'],
      [RETURN_STEPS.caseNote, 'done'],
      [RETURN_STEPS.activity, 'skipped'],
    ]);
    faults.crmDown = false;
    expect(tasksAbout(rma)).toHaveLength(0);
  });

  it('compensates a return with nothing that can be undone: parked again, saying so, and retried later', async () => {
    const { id, rma } = await parkedReturn('resolve-compensate-return');
    const { payload } = await resolve('integration_operator', { id, action: 'COMPENSATE', reason: 'customer withdrew the return' });
    expect(payload!.errors).toEqual([]);
    expect(decision(payload!.workflow!.history)?.event).toBe('operator: compensate');
    // Neither the RMA nor the case note has an undo: the failure stands, back in the queue for an operator.
    const parked = await until(id, (instance) => instance.state === 'failed');
    expect(parked).toMatchObject({ phase: 'forward', currentStep: RETURN_STEPS.activity });
    expect(parked.parkedReason).toMatch(/nothing to undo/);
    faults.crmDown = false;
    expect((await resolve('integration_operator', { id, action: 'RETRY' })).payload!.errors).toEqual([]);
    await until(id, (instance) => instance.state === 'done');
    expect(tasksAbout(rma)).toHaveLength(1);
    const events = (await engine().get(id))!.history.map((entry) => [entry.event, entry.detail]);
    expect(events).toContainEqual([
      'operator: compensate',
      'compensate (by integration_operator@test.example): customer withdrew the return',
    ]);
    // Without a reason, the history says who alone.
    expect(events).toContainEqual(['operator: retry', 'retry crm-activity (by integration_operator@test.example)']);
  });

  it('compensates a workflow whose steps can be undone: the done step undone, the workflow compensated', async () => {
    const id = await parkedUndoable('resolve-compensate');
    // Concord's own service identity may decide too (integration sees all).
    const { payload } = await resolve('integration', { id, action: 'COMPENSATE', reason: 'order withdrawn' });
    expect(payload!.errors).toEqual([]);
    await until(id, (instance) => instance.state === 'compensated');
    expect(undone.filter((undoneId) => undoneId === id)).toHaveLength(1);
    const detail = (await engine().get(id))!;
    expect(detail.steps.map((step) => [step.name, step.phase, step.state])).toEqual([
      ['reserve', 'forward', 'done'],
      ['confirm', 'forward', 'failed'],
      ['reserve', 'compensating', 'compensated'],
    ]);
  });

  it('refuses in errors what does not apply: a workflow not parked, an unknown id, a step this service does not run', async () => {
    const { instance } = await engine().start(
      UNDOABLE.type,
      { customerId: 'C10001' },
      { idempotencyKey: 'resolve-done', correlationId: 'x' },
    );
    engine().wake();
    await until(instance.id, (it) => it.state === 'done');
    const before = (await engine().get(instance.id))!.history.length;
    const notParked = await resolve('integration_operator', { id: instance.id, action: 'RETRY', reason: 'again' });
    expect(notParked.errors).toBeUndefined();
    expect(notParked.payload!.errors).toEqual([{ code: 'NOT_PARKED', message: expect.stringContaining('is done, not parked') }]);
    // The workflow as it is, untouched.
    expect(notParked.payload!.workflow).toMatchObject({ id: instance.id, state: 'DONE' });
    expect((await engine().get(instance.id))!.history).toHaveLength(before);
    // The gateway's audit line tells the refusal, not a success.
    expect(logged('mutation').findLast((entry) => entry.what === 'resolveWorkflow')).toMatchObject({
      outcome: 'refused',
      refusals: ['NOT_PARKED'],
    });

    const unknown = await resolve('integration_operator', { id: 'wf_no_such_instance', action: 'SKIP' });
    expect(unknown.errors).toBeUndefined();
    expect(unknown.payload).toEqual({ workflow: null, errors: [{ code: 'NOT_FOUND', message: 'No workflow wf_no_such_instance' }] });

    // An instance an earlier version of the service parked, of a type this one does not run. It
    // is started an hour ahead, so that only its own engine claims it (and parks it).
    const earlier = await createWorkflowEngine({
      sql,
      workflows: [RETIRED],
      logger: createLogger('retired', 'silent'),
      owner: 'earlier-version',
      now: () => Date.now() + 3_600_000,
    });
    const { instance: retired } = await earlier.start(RETIRED.type, {}, { idempotencyKey: 'retired', correlationId: 'retired' });
    await earlier.runDue();
    await earlier.stop();
    expect((await engine().get(retired.id))!.state).toBe('failed');
    const nothing = await resolve('integration_operator', { id: retired.id, action: 'SKIP' });
    expect(nothing.payload!.errors).toEqual([{ code: 'NOTHING_TO_SKIP', message: expect.stringContaining('no step to skip') }]);
    expect(nothing.payload!.workflow).toMatchObject({ id: retired.id, state: 'FAILED' });
  });

  it('answers a reason over 500 characters or a blank id with BAD_USER_INPUT naming it, deciding nothing', async () => {
    const id = await parkedUndoable('resolve-bad-input');
    const long = await resolve('integration_operator', { id, action: 'RETRY', reason: 'x'.repeat(501) });
    expect(long.errors?.[0]).toMatchObject({
      message: 'Argument "input.reason" must be at most 500 characters (got 501)',
      extensions: { code: 'BAD_USER_INPUT' },
    });
    const blank = await resolve('integration_operator', { id: '  ', action: 'RETRY' });
    expect(blank.errors?.[0]).toMatchObject({ message: expect.stringContaining('"input.id"'), extensions: { code: 'BAD_USER_INPUT' } });
    const after = (await engine().get(id))!;
    expect(after.state).toBe('failed');
    expect(after.history.some((entry) => entry.event.startsWith('operator:'))).toBe(false);
    // 500 characters are kept whole.
    const fits = await resolve('integration_operator', { id, action: 'RETRY', reason: 'y'.repeat(500) });
    expect(fits.payload!.errors).toEqual([]);
    expect(decision(fits.payload!.workflow!.history)?.detail).toBe(
      `retry confirm (by integration_operator@test.example): ${'y'.repeat(500)}`,
    );
  });

  it('is for operators (and integration) only: support leads watch the queue but may not decide, nor may anyone else', async () => {
    const id = await parkedUndoable('resolve-roles');
    const allowed = new Set(['integration_operator', 'integration']);
    for (const role of ROLES.filter((r) => !allowed.has(r))) {
      const who: Who = role === 'portal_customer' ? { role, customer: 'C10001' } : role;
      const { status, errors, payload } = await resolve(who, { id, action: 'RETRY', reason: 'let me' });
      expect(
        errors?.map((error) => error.extensions?.code),
        role,
      ).toContain('FORBIDDEN');
      expect(payload, role).toBeNull();
      // A portal customer is refused before planning: not a registered portal operation.
      if (role === 'portal_customer') expect(status).toBe(403);
    }
    const after = (await engine().get(id))!;
    expect(after.state).toBe('failed');
    expect(after.history.some((entry) => entry.event.startsWith('operator:'))).toBe(false);

    // A support lead sees the exception queue; an agent does not.
    const lead = await stack.queryAs<{ workflows: { nodes: { id: string }[] } }>('support_lead', PARKED, {});
    expect(lead.body.errors).toBeUndefined();
    expect(lead.body.data!.workflows.nodes.map((node) => node.id)).toContain(id);
    const agent = await stack.queryAs('support_agent', PARKED, {});
    expect(agent.body.errors?.map((error) => error.extensions?.code)).toContain('FORBIDDEN');
  });
});
