import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventBroker } from '../../platform/events/broker.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import type { WorkflowInstance } from '../../platform/workflow/engine.ts';
import { sqliteExecutor, type SqlExecutor } from '../../platform/workflow/sql.ts';
import { RETURN_STEPS, RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import { operation, startStack, type Stack, returnableCase } from '../helpers/stack.ts';

const CREATE = operation('agent-console', 'CreateReturnAuthorization');

/** Switches: the CRM refusing activities (a step that retries, then parks), the broker refusing events, the store down. */
const faults = { crmDown: false, brokerDown: false, storeDown: false };

/** The broker the stack shares, but refusing what the process service publishes while `faults.brokerDown`. */
function refusingWhenDown(inner: EventBroker): EventBroker {
  return {
    kind: inner.kind,
    publish: (events) => (faults.brokerDown ? Promise.reject(new Error('broker: connection refused')) : inner.publish(events)),
    consume: (options, handler) => inner.consume(options, handler),
    subscribe: (types, handler) => inner.subscribe(types, handler),
    read: (options) => inner.read(options),
    rewind: (name, types, startAt) => inner.rewind(name, types, startAt),
    consumers: () => inner.consumers(),
    close: async () => undefined,
  };
}

/** The process service's store, failing every statement while `faults.storeDown`. */
function failingWhenDown(inner: SqlExecutor): SqlExecutor {
  const down = () => Promise.reject(Object.assign(new Error('store: connection refused'), { code: 'ECONNREFUSED' }));
  return {
    dialect: inner.dialect,
    query: (sql, params) => (faults.storeDown ? down() : inner.query(sql, params)),
    run: (sql, params) => (faults.storeDown ? down() : inner.run(sql, params)),
    transaction: (work) => (faults.storeDown ? down() : inner.transaction(work)),
    close: () => inner.close(),
  };
}

interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The process service's /metrics, parsed: the samples of one metric, and the value of one series. */
interface Scrape {
  readonly status: number;
  samples(name: string): Sample[];
  /** The value of the series with these labels (and any others); undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

describe('workflow metrics on the process service', () => {
  let stack: Stack;
  const broker = embeddedBroker({ file: ':memory:', logger: createLogger('broker', 'silent'), pollMs: 20 });

  beforeAll(async () => {
    stack = await startStack({
      broker,
      // Retries within tens of ms, parked after 6 attempts (about half a second).
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '6', RMA_AGENT_LIMIT: '20000' },
      processes: { broker: refusingWhenDown(broker), sql: failingWhenDown(sqliteExecutor(openDatabase(':memory:'))) },
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
    faults.storeDown = false;
    faults.brokerDown = false;
    await stack?.stop();
    await broker.close();
  });
  beforeEach(() => {
    faults.crmDown = false;
    faults.brokerDown = false;
    faults.storeDown = false;
  });

  async function scrape(): Promise<Scrape> {
    const response = await fetch(stack.processes.url.replace(/\/graphql$/, '/metrics'));
    const text = await response.text();
    const all: (Sample & { name: string })[] = [];
    for (const line of text.split('\n')) {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      if (!match) continue;
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      all.push({ name: match[1]!, labels, value: Number(match[3]) });
    }
    const samples = (name: string) => all.filter((sample) => sample.name === name);
    return {
      status: response.status,
      samples,
      value: (name, labels = {}) =>
        samples(name).find((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value))?.value,
    };
  }

  const stepsTotal = (m: Scrape, step: string, outcome: string) =>
    m.value('concord_workflow_steps_total', { type: RETURN_WORKFLOW, step, outcome }) ?? 0;
  const instances = (m: Scrape, state: string) => m.value('concord_workflow_instances', { type: RETURN_WORKFLOW, state });

  const used = new Set<string>();
  /** An open case about a unit under warranty, not used by an earlier test. */
  const candidate = () => returnableCase(stack.dbs, { used });

  /** Authorizes a return through the gateway, as an agent; the workflow that creates it. */
  async function returnWorkflow(key: string): Promise<WorkflowInstance> {
    const c = candidate();
    const { body } = await stack.queryAs<{ createReturnAuthorization: { returnAuthorization: { number: string } | null } }>(
      'support_agent',
      CREATE,
      {
        input: {
          caseId: c.caseId,
          resolution: 'REPLACE',
          idempotencyKey: key,
          lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
        },
      },
    );
    expect(body.errors).toBeUndefined();
    const rma = body.data!.createReturnAuthorization.returnAuthorization!.number;
    const all = await stack.processes.engine.list({ type: RETURN_WORKFLOW, limit: 1000 });
    const found = all.find(
      (instance) => (instance.results[RETURN_STEPS.order] as { returnNumber?: string } | undefined)?.returnNumber === rma,
    );
    if (!found) throw new Error(`no workflow created ${rma}`);
    return found;
  }

  async function until(id: string, state: WorkflowInstance['state'], ms = 10_000): Promise<WorkflowInstance> {
    const instance = await stack.processes.engine.waitFor(id, (i) => i.state === state, ms);
    if (instance?.state !== state) throw new Error(`workflow ${id} is ${instance?.state} at ${instance?.currentStep}, not ${state}`);
    return instance;
  }

  /** Scrapes until `holds`, at most `ms`; the last scrape. */
  async function scrapeUntil(holds: (m: Scrape) => boolean, ms = 10_000): Promise<Scrape> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = await scrape();
      if (holds(m) || Date.now() > deadline) return m;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('reports every type and state from the start, 0 where there are none, and nothing of the old concord_workflows', async () => {
    const m = await scrape();
    expect(m.status).toBe(200);
    for (const state of ['running', 'waiting', 'done', 'failed', 'compensated']) expect(instances(m, state), state).toBe(0);
    for (const type of [RETURN_WORKFLOW, 'quote-to-order', 'customer-onboarding', 'subscription-change']) {
      expect(m.value('concord_workflow_exceptions', { type }), type).toBe(0);
      expect(m.value('concord_workflow_exception_oldest_age_seconds', { type }), type).toBe(0);
    }
    expect(m.value('concord_workflow_step_retries_total', { type: RETURN_WORKFLOW, step: RETURN_STEPS.activity })).toBe(0);
    expect(m.value('concord_outbox_depth')).toBe(0);
    expect(m.value('concord_outbox_oldest_age_seconds')).toBe(0);
    expect(m.samples('concord_workflows')).toEqual([]);
    // Store-wide numbers carry the service label, as every series does.
    expect(m.samples('concord_outbox_depth')[0]!.labels).toEqual({ service: 'processes' });
  });

  it('counts a return workflow done and each of its three steps done', async () => {
    const before = await scrape();
    const workflow = await returnWorkflow('metrics-done');
    await until(workflow.id, 'done');
    const after = await scrape();
    expect(instances(after, 'done')).toBe(instances(before, 'done')! + 1);
    for (const step of Object.values(RETURN_STEPS))
      expect(stepsTotal(after, step, 'done') - stepsTotal(before, step, 'done'), step).toBe(1);
    expect(after.value('concord_workflow_exceptions', { type: RETURN_WORKFLOW })).toBe(0);
  });

  it('counts the retries of a step whose system is down, then the instance parked and its age; 0 again once an operator retried it', async () => {
    const before = await scrape();
    faults.crmDown = true;
    const workflow = await returnWorkflow('metrics-parked');
    await until(workflow.id, 'failed');
    // Parked a while: its age is what the alert on an hour is about.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const parked = await scrape();
    const retried = (m: Scrape) => m.value('concord_workflow_step_retries_total', { type: RETURN_WORKFLOW, step: RETURN_STEPS.activity })!;
    // Six attempts: five retries, then parked.
    expect(retried(parked) - retried(before)).toBe(5);
    expect(stepsTotal(parked, RETURN_STEPS.activity, 'retried') - stepsTotal(before, RETURN_STEPS.activity, 'retried')).toBe(5);
    expect(stepsTotal(parked, RETURN_STEPS.activity, 'failed') - stepsTotal(before, RETURN_STEPS.activity, 'failed')).toBe(1);
    expect(parked.value('concord_workflow_step_retries_total', { type: RETURN_WORKFLOW, step: RETURN_STEPS.order })).toBe(
      before.value('concord_workflow_step_retries_total', { type: RETURN_WORKFLOW, step: RETURN_STEPS.order }),
    );
    expect(parked.value('concord_workflow_exceptions', { type: RETURN_WORKFLOW })).toBe(1);
    expect(instances(parked, 'failed')).toBe(1);
    const age = parked.value('concord_workflow_exception_oldest_age_seconds', { type: RETURN_WORKFLOW })!;
    expect(age).toBeGreaterThanOrEqual(0.25);
    expect(age).toBeLessThan(60);
    // Other types have nothing parked.
    expect(parked.value('concord_workflow_exceptions', { type: 'quote-to-order' })).toBe(0);

    faults.crmDown = false;
    await stack.processes.engine.act(workflow.id, 'retry', 'metrics-test');
    await until(workflow.id, 'done');
    const retriedNow = await scrape();
    expect(retriedNow.value('concord_workflow_exceptions', { type: RETURN_WORKFLOW })).toBe(0);
    expect(retriedNow.value('concord_workflow_exception_oldest_age_seconds', { type: RETURN_WORKFLOW })).toBe(0);
    expect(instances(retriedNow, 'failed')).toBe(0);
    expect(instances(retriedNow, 'done')).toBe(instances(before, 'done')! + 1);
    expect(stepsTotal(retriedNow, RETURN_STEPS.activity, 'done') - stepsTotal(before, RETURN_STEPS.activity, 'done')).toBe(1);
  });

  it('shows the outbox filling while the broker refuses, its oldest event ageing, and draining to 0 once it accepts', async () => {
    faults.brokerDown = true;
    const workflow = await returnWorkflow('metrics-outbox');
    await until(workflow.id, 'done');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const held = await scrape();
    // At least the workflow's own changes (started, each step, done) wait to be published.
    expect(held.value('concord_outbox_depth')).toBeGreaterThanOrEqual(5);
    const age = held.value('concord_outbox_oldest_age_seconds')!;
    expect(age).toBeGreaterThanOrEqual(0.25);
    expect(age).toBeLessThan(60);

    faults.brokerDown = false;
    // The engine's own relay tries again after its backoff: nobody needs to push it.
    const drained = await scrapeUntil((m) => m.value('concord_outbox_depth') === 0);
    expect(drained.value('concord_outbox_depth')).toBe(0);
    expect(drained.value('concord_outbox_oldest_age_seconds')).toBe(0);
  });

  it('still answers the scrape while the store is down, the store-wide gauges as they were last read', async () => {
    const up = await scrape();
    faults.storeDown = true;
    await expect(stack.processes.engine.stats()).rejects.toThrow(/connection refused/);
    const down = await scrape();
    expect(down.status).toBe(200);
    expect(instances(down, 'done')).toBe(instances(up, 'done'));
    expect(down.value('concord_workflow_exceptions', { type: RETURN_WORKFLOW })).toBe(0);
    expect(down.value('concord_outbox_depth')).toBe(0);
    // The counters are the service's own: still there.
    expect(stepsTotal(down, RETURN_STEPS.order, 'done')).toBe(stepsTotal(up, RETURN_STEPS.order, 'done'));
    faults.storeDown = false;
  });
});
