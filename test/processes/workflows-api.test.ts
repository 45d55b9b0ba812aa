import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentStepError, type WorkflowDefinition } from '../../platform/workflow/engine.ts';
import { startStack, type Stack, type Who } from '../helpers/stack.ts';

/** Test workflows run by the real process service: one that finishes, one that is refused, one whose step never succeeds. */
const steps = {
  fine: {
    type: 'test-fine',
    customerOf: (input: { customerId: string }) => input.customerId,
    steps: [
      { name: 'reserve', run: async () => ({ reserved: true }) },
      { name: 'confirm', run: async () => ({ confirmed: true }) },
    ],
  },
  refused: {
    type: 'test-refused',
    customerOf: (input: { customerId: string }) => input.customerId,
    steps: [
      { name: 'reserve', run: async () => ({ reserved: true }), compensate: async () => undefined },
      {
        name: 'confirm',
        run: async () => {
          throw new PermanentStepError('customer is on credit hold');
        },
      },
    ],
  },
  stuck: {
    type: 'test-stuck',
    customerOf: (input: { customerId: string }) => input.customerId,
    steps: [
      {
        name: 'call-erp',
        retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
        run: async () => {
          throw new Error('ERP answered 503');
        },
      },
    ],
  },
} satisfies Record<string, WorkflowDefinition>;

const WORKFLOW = /* GraphQL */ `
  query Workflow($id: ID!) {
    workflow(id: $id) {
      id
      type
      state
      phase
      correlationId
      customer {
        id
      }
      currentStep
      attempts
      lastError
      parkedReason
      steps {
        name
        phase
        state
        attempts
        startedAt
        finishedAt
        lastError
      }
      history {
        at
        event
      }
      createdAt
    }
  }
`;

const WORKFLOWS = /* GraphQL */ `
  query Workflows($filter: WorkflowFilter, $first: Int, $after: String) {
    workflows(filter: $filter, first: $first, after: $after) {
      nodes {
        id
        type
        state
        customer {
          id
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`;

type WorkflowsData = {
  workflows: {
    nodes: { id: string; type: string; state: string; customer: { id: string } | null }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
};

describe('workflows in the graph', () => {
  let stack: Stack;
  const ids: Record<string, string> = {};
  const operator: Who = 'integration_operator';

  async function settled(id: string, states: string[]): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const instance = await stack.processes.engine.get(id);
      if (instance && states.includes(instance.state)) return;
      if (Date.now() > deadline) throw new Error(`workflow ${id} is ${instance?.state}, not ${states.join(' or ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  beforeAll(async () => {
    stack = await startStack({ processes: { extraWorkflows: Object.values(steps) } });
    const { engine } = stack.processes;
    for (const [name, customerId] of [
      ['fine', 'C10001'],
      ['refused', 'C10002'],
      ['stuck', 'C10001'],
    ] as const) {
      const { instance } = await engine.start(
        steps[name].type,
        { customerId },
        { idempotencyKey: `key-${name}`, correlationId: `corr-${name}` },
      );
      ids[name] = instance.id;
    }
    engine.wake();
    await settled(ids.fine!, ['done']);
    await settled(ids.refused!, ['compensated']);
    await settled(ids.stuck!, ['failed']);
  }, 60_000);

  afterAll(() => stack?.stop());

  it('shows a finished workflow with its steps, customer and correlation id', async () => {
    const { status, body } = await stack.queryAs(operator, WORKFLOW, { id: ids.fine });
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    const workflow = body.data!.workflow as Record<string, unknown> & { steps: Record<string, unknown>[]; history: { event: string }[] };
    expect(workflow).toMatchObject({
      id: ids.fine,
      type: 'test-fine',
      state: 'DONE',
      phase: 'FORWARD',
      correlationId: 'corr-fine',
      customer: { id: 'C10001' },
      currentStep: null,
      lastError: null,
      parkedReason: null,
    });
    expect(workflow.steps.map((step) => [step.name, step.phase, step.state, step.attempts])).toEqual([
      ['reserve', 'FORWARD', 'DONE', 1],
      ['confirm', 'FORWARD', 'DONE', 1],
    ]);
    for (const step of workflow.steps)
      expect(Date.parse(step.finishedAt as string)).toBeGreaterThanOrEqual(Date.parse(step.startedAt as string));
    expect(workflow.history[0]!.event).toBe('started');
  });

  it('shows a refused workflow compensated, and a failing one parked with its reason', async () => {
    const refused = (await stack.queryAs(operator, WORKFLOW, { id: ids.refused })).body.data!.workflow as {
      state: string;
      steps: { name: string; phase: string; state: string }[];
    };
    expect(refused.state).toBe('COMPENSATED');
    expect(refused.steps.map((step) => [step.name, step.phase, step.state])).toEqual([
      ['reserve', 'FORWARD', 'DONE'],
      ['confirm', 'FORWARD', 'FAILED'],
      // The undo of what the forward step did, run after the refusal.
      ['reserve', 'COMPENSATING', 'COMPENSATED'],
    ]);

    const stuck = (await stack.queryAs(operator, WORKFLOW, { id: ids.stuck })).body.data!.workflow as Record<string, unknown>;
    expect(stuck).toMatchObject({ state: 'FAILED', currentStep: 'call-erp', attempts: 2, lastError: 'ERP answered 503' });
    expect(stuck.parkedReason).toContain('ERP answered 503');
  });

  it('lists workflows newest first, filtered by type, state, customer and time, page by page', async () => {
    const all = await stack.queryAs<WorkflowsData>(operator, WORKFLOWS, {});
    expect(all.body.errors).toBeUndefined();
    expect(all.body.data!.workflows.nodes.map((node) => node.id)).toEqual([ids.stuck, ids.refused, ids.fine]);

    const filtered = async (filter: Record<string, unknown>) =>
      (await stack.queryAs<WorkflowsData>(operator, WORKFLOWS, { filter })).body.data!.workflows.nodes.map((node) => node.id);
    expect(await filtered({ customerId: 'C10001' })).toEqual([ids.stuck, ids.fine]);
    expect(await filtered({ state: 'FAILED' })).toEqual([ids.stuck]);
    expect(await filtered({ type: 'test-refused' })).toEqual([ids.refused]);
    expect(await filtered({ since: new Date(Date.now() + 60_000).toISOString() })).toEqual([]);

    const first = (await stack.queryAs<WorkflowsData>(operator, WORKFLOWS, { first: 2 })).body.data!.workflows;
    expect(first.nodes.map((node) => node.id)).toEqual([ids.stuck, ids.refused]);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = (await stack.queryAs<WorkflowsData>(operator, WORKFLOWS, { first: 2, after: first.pageInfo.endCursor })).body.data!
      .workflows;
    expect(second.nodes.map((node) => node.id)).toEqual([ids.fine]);
    expect(second.pageInfo.hasNextPage).toBe(false);
  });

  it('is for operators and support leads only', async () => {
    for (const who of ['integration_operator', 'support_lead'] as const) {
      const { body } = await stack.queryAs(who, WORKFLOW, { id: ids.fine });
      expect(body.errors, who).toBeUndefined();
      expect((body.data!.workflow as { id: string }).id).toBe(ids.fine);
    }
    for (const who of ['support_agent', 'sales_rep', 'finance', { role: 'portal_customer', customer: 'C10001' }] as const) {
      const { body } = await stack.queryAs(who, WORKFLOWS, {});
      expect(
        body.errors?.map((error) => error.extensions?.code),
        JSON.stringify(who),
      ).toContain('FORBIDDEN');
      expect(body.data?.workflows ?? null).toBeNull();
    }
  });

  it('answers a bad cursor, instant or page size with BAD_USER_INPUT naming the argument, and an unknown id with null', async () => {
    const codeOf = async (variables: Record<string, unknown>) => {
      const { status, body } = await stack.queryAs(operator, WORKFLOWS, variables);
      return { status, code: body.errors?.[0]?.extensions?.code, message: body.errors?.[0]?.message };
    };
    expect(await codeOf({ after: 'not-a-cursor' })).toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringContaining('"after"') });
    expect(await codeOf({ filter: { since: 'yesterday' } })).toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringContaining('"filter.since"'),
    });
    const tooMany = await codeOf({ first: 5_000 });
    expect(tooMany.code).toMatch(/BAD_USER_INPUT|COST_LIMIT_EXCEEDED|LIST_SIZE/);
    expect(tooMany.status).toBeLessThan(500);

    const unknown = await stack.queryAs(operator, WORKFLOW, { id: 'wf_no_such_instance' });
    expect(unknown.body.errors).toBeUndefined();
    expect(unknown.body.data!.workflow).toBeNull();
  });

  it('counts instances by type and state on /metrics, and the parked one in the exception queue', async () => {
    const text = await (await fetch(stack.processes.url.replace('/graphql', '/metrics'))).text();
    expect(text).toMatch(/^concord_workflow_instances\{type="test-fine",state="done",service="processes"\} 1$/m);
    expect(text).toMatch(/^concord_workflow_instances\{type="test-refused",state="compensated",service="processes"\} 1$/m);
    expect(text).toMatch(/^concord_workflow_instances\{type="test-stuck",state="failed",service="processes"\} 1$/m);
    expect(text).toMatch(/^concord_workflow_instances\{type="test-stuck",state="done",service="processes"\} 0$/m);
    expect(text).toMatch(/^concord_workflow_exceptions\{type="test-stuck",service="processes"\} 1$/m);
    expect(text).toMatch(/^concord_workflow_exceptions\{type="test-fine",service="processes"\} 0$/m);
    expect(text).toMatch(
      /^concord_workflow_steps_total\{type="test-refused",step="reserve",outcome="compensated",service="processes"\} 1$/m,
    );
    expect(text).toMatch(/^concord_workflow_steps_total\{type="test-refused",step="confirm",outcome="failed",service="processes"\} 1$/m);
    expect(text).not.toMatch(/^concord_workflows\{/m);
  });
});
