import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import {
  createWorkflowEngine,
  endWorkflow,
  OperatorActionError,
  PermanentStepError,
  WorkflowKeyReusedError,
  type EngineOptions,
  type WorkflowDefinition,
  type WorkflowEngine,
} from '../../platform/workflow/engine.ts';
import { postgresExecutor, sqliteExecutor, type SqlExecutor } from '../../platform/workflow/sql.ts';
import { claimDue, updateInstance } from '../../platform/workflow/store.ts';
import type { EventBroker } from '../../platform/events/broker.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { startPostgres } from '../helpers/postgres.ts';

/**
 * A system a workflow writes to, as the system APIs behave: a write carries an idempotency key
 * and is applied once per key, however often it arrives. `calls` counts arrivals.
 */
class System {
  readonly applied = new Map<string, unknown>();
  calls = 0;
  /** Arrivals to fail before the next one is applied. */
  failNext = 0;
  down = false;
  write(key: string, value: unknown): string {
    this.calls++;
    if (this.down) throw new Error('system unavailable');
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('timeout');
    }
    if (!this.applied.has(key)) this.applied.set(key, value);
    return `${key}#${this.applied.size}`;
  }
  undo(key: string): void {
    this.calls++;
    this.applied.delete(key.replace(':undo:', ':'));
  }
}

const logger = createLogger('workflow-test', 'silent');

/** order → confirm → notify: three systems, the first two undoable. */
function orderWorkflow(systems: { erp: System; crm: System; desk: System }, refuse?: { step: string; times?: number }) {
  let refusals = refuse?.times ?? Infinity;
  const refuseHere = (step: string) => {
    if (refuse?.step === step && refusals > 0) {
      refusals--;
      throw new PermanentStepError(`${step} refused: customer on credit hold`, 'CREDIT_HOLD');
    }
  };
  const definition: WorkflowDefinition<{ customer: string; amount: number }> = {
    type: 'test.order',
    customerOf: (input) => input.customer,
    steps: [
      {
        name: 'create-order',
        run: async (context) => {
          refuseHere('create-order');
          return { number: systems.erp.write(context.idempotencyKey, context.input) };
        },
        compensate: async (context) => systems.erp.undo(context.idempotencyKey),
      },
      {
        name: 'confirm-in-crm',
        run: async (context) => {
          refuseHere('confirm-in-crm');
          const order = context.results['create-order'] as { number: string };
          return { activity: systems.crm.write(context.idempotencyKey, order.number) };
        },
        compensate: async (context) => systems.crm.undo(context.idempotencyKey),
      },
      {
        name: 'notify-desk',
        run: async (context) => {
          refuseHere('notify-desk');
          systems.desk.write(context.idempotencyKey, 'entitlement');
          return null;
        },
      },
    ],
  };
  return definition;
}

const fastRetry = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

/** Runs due steps until the instance settles (or parks), as a poller would. */
async function settle(engine: WorkflowEngine, id: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await engine.runDue();
    const instance = await engine.get(id);
    if (instance && ['done', 'failed', 'compensated'].includes(instance.state)) return instance;
    if (Date.now() > deadline) throw new Error(`workflow ${id} is still ${instance?.state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Backend {
  name: string;
  setup(): Promise<void>;
  /** A store of its own for one test (a fresh database). */
  open(): Promise<SqlExecutor>;
  teardown(): Promise<void>;
}

const folder = mkdtempSync(join(tmpdir(), 'concord-workflow-'));
let files = 0;
let postgres: Awaited<ReturnType<typeof startPostgres>> | undefined;
const backends: Backend[] = [
  {
    name: 'SQLite',
    setup: async () => undefined,
    open: async () => sqliteExecutor(openDatabase(join(folder, `store-${++files}.sqlite`))),
    teardown: async () => rmSync(folder, { recursive: true, force: true }),
  },
  {
    name: 'PostgreSQL',
    setup: async () => {
      postgres = await startPostgres();
    },
    open: async () => {
      // A database of its own per test, on the one server.
      const admin = postgresExecutor({ url: postgres!.url, max: 1 });
      const name = `store_${++files}`;
      await admin.run(`CREATE DATABASE ${name}`);
      await admin.close();
      const url = new URL(postgres!.url);
      url.pathname = `/${name}`;
      return postgresExecutor({ url: url.toString(), max: 10 });
    },
    teardown: async () => {
      await postgres?.stop();
    },
  },
];

describe.each(backends)('the workflow mechanism on $name', (backend) => {
  const open: { sql: SqlExecutor; engines: WorkflowEngine[] }[] = [];
  beforeAll(() => backend.setup(), 60_000);
  afterAll(() => backend.teardown());
  afterEach(async () => {
    for (const { sql, engines } of open.splice(0)) {
      for (const engine of engines) await engine.stop(1_000);
      await sql.close();
    }
  });

  async function engineOn(workflows: WorkflowDefinition[], options: Partial<EngineOptions> = {}, sql?: SqlExecutor) {
    const store = sql ?? (await backend.open());
    const engine = await createWorkflowEngine({ sql: store, workflows, logger, retry: fastRetry, ...options });
    const entry = open.find((item) => item.sql === store);
    if (entry) entry.engines.push(engine);
    else open.push({ sql: store, engines: [engine] });
    return { engine, sql: store };
  }

  const systemsOf = () => ({ erp: new System(), crm: new System(), desk: new System() });

  it('runs the steps in order, each once, and shows them done with their results', async () => {
    const systems = systemsOf();
    const { engine } = await engineOn([orderWorkflow(systems)]);
    const { instance, created } = await engine.start(
      'test.order',
      { customer: 'C1', amount: 100 },
      { idempotencyKey: 'k1', correlationId: 'c1' },
    );
    expect(created).toBe(true);
    expect(instance.state).toBe('running');
    const done = await settle(engine, instance.id);
    expect(done.state).toBe('done');
    expect(done.correlationId).toBe('c1');
    expect(done.customerId).toBe('C1');
    expect(done.steps.map((step) => [step.name, step.state, step.attempts])).toEqual([
      ['create-order', 'done', 1],
      ['confirm-in-crm', 'done', 1],
      ['notify-desk', 'done', 1],
    ]);
    // The CRM step used what the ERP step gave.
    expect([...systems.crm.applied.values()]).toEqual([`${instance.id}:create-order#1`]);
    expect([systems.erp.calls, systems.crm.calls, systems.desk.calls]).toEqual([1, 1, 1]);
    expect(done.history.map((entry) => entry.event)).toEqual(['started', 'step done', 'step done', 'step done', 'done']);
  });

  it('starts one instance for twenty concurrent requests with one key, and refuses the key for another input', async () => {
    const systems = systemsOf();
    const { engine } = await engineOn([orderWorkflow(systems)]);
    const input = { customer: 'C1', amount: 100 };
    const starts = await Promise.all(
      Array.from({ length: 20 }, () => engine.start('test.order', input, { idempotencyKey: 'same', correlationId: 'c' })),
    );
    expect(new Set(starts.map((start) => start.instance.id)).size).toBe(1);
    expect(starts.filter((start) => start.created)).toHaveLength(1);
    await settle(engine, starts[0]!.instance.id);
    expect(systems.erp.applied.size).toBe(1);
    expect(systems.erp.calls).toBe(1);
    // The same input in another field order is the same request.
    await expect(
      engine.start('test.order', { amount: 100, customer: 'C1' }, { idempotencyKey: 'same', correlationId: 'c' }),
    ).resolves.toMatchObject({
      created: false,
    });
    await expect(
      engine.start('test.order', { customer: 'C1', amount: 999 }, { idempotencyKey: 'same', correlationId: 'c' }),
    ).rejects.toThrow(WorkflowKeyReusedError);
  });

  it('retries a step that fails for a passing reason, with backoff, and goes on', async () => {
    const systems = systemsOf();
    systems.crm.failNext = 2;
    const { engine } = await engineOn([orderWorkflow(systems)]);
    const { instance } = await engine.start('test.order', { customer: 'C1', amount: 1 }, { idempotencyKey: 'k', correlationId: 'c' });
    const done = await settle(engine, instance.id);
    expect(done.state).toBe('done');
    expect(done.steps[1]).toMatchObject({ name: 'confirm-in-crm', state: 'done', attempts: 3 });
    expect(systems.crm.calls).toBe(3);
    expect(systems.crm.applied.size).toBe(1);
    expect(done.history.filter((entry) => entry.event.startsWith('step failed; retry in'))).toHaveLength(2);
  });

  it('parks a step that keeps failing, with its reason; an operator retry then finishes it once', async () => {
    const systems = systemsOf();
    systems.desk.down = true;
    const { engine } = await engineOn([orderWorkflow(systems)]);
    const { instance } = await engine.start('test.order', { customer: 'C1', amount: 1 }, { idempotencyKey: 'k', correlationId: 'c' });
    const parked = await settle(engine, instance.id);
    expect(parked.state).toBe('failed');
    expect(parked.currentStep).toBe('notify-desk');
    expect(parked.parkedReason).toBe('notify-desk failed 4 times: system unavailable');
    expect(parked.steps[2]).toMatchObject({ state: 'failed', attempts: 4, lastError: 'system unavailable' });
    expect((await engine.list({ state: 'failed' })).map((item) => item.id)).toEqual([instance.id]);

    // Parked means parked: nothing runs it until someone decides.
    await engine.runDue();
    expect(systems.desk.calls).toBe(4);

    systems.desk.down = false;
    const retried = await engine.act(instance.id, 'retry', 'ops@example.com');
    expect(retried.state).toBe('running');
    const done = await settle(engine, instance.id);
    expect(done.state).toBe('done');
    expect(systems.desk.applied.size).toBe(1);
    expect([systems.erp.applied.size, systems.crm.applied.size]).toEqual([1, 1]);
    expect(done.history.map((entry) => entry.event)).toContain('operator: retry');
    expect(done.history.find((entry) => entry.event === 'operator: retry')?.detail).toBe('retry notify-desk (by ops@example.com)');
    await expect(engine.act(instance.id, 'retry', 'ops')).rejects.toThrow(OperatorActionError);
  });

  it('undoes the steps done, newest first, when a later step fails for good, and shows it', async () => {
    const systems = systemsOf();
    const { engine } = await engineOn([orderWorkflow(systems, { step: 'notify-desk' })]);
    const { instance } = await engine.start('test.order', { customer: 'C1', amount: 1 }, { idempotencyKey: 'k', correlationId: 'c' });
    const compensated = await settle(engine, instance.id);
    expect(compensated.state).toBe('compensated');
    expect(compensated.lastError).toBe('notify-desk refused: customer on credit hold');
    expect([systems.erp.applied.size, systems.crm.applied.size, systems.desk.applied.size]).toEqual([0, 0, 0]);
    expect(compensated.steps.map((step) => `${step.phase}:${step.name}:${step.state}`)).toEqual([
      'forward:create-order:done',
      'forward:confirm-in-crm:done',
      'forward:notify-desk:failed',
      'compensating:create-order:compensated',
      'compensating:confirm-in-crm:compensated',
    ]);
    const events = compensated.history.map((entry) => `${entry.event} ${entry.detail ?? ''}`.trim());
    expect(events.slice(-4)).toEqual([
      'step failed for good; compensating notify-desk (attempt 1): notify-desk refused: customer on credit hold',
      'step compensated confirm-in-crm (attempt 1)',
      'step compensated create-order (attempt 1)',
      'compensated',
    ]);
  });

  it('parks a refusal with nothing to undo at the refused step; fixed, an operator retry runs it', async () => {
    const systems = systemsOf();
    const { engine } = await engineOn([orderWorkflow(systems, { step: 'create-order', times: 1 })]);
    const { instance } = await engine.start('test.order', { customer: 'C1', amount: 1 }, { idempotencyKey: 'k', correlationId: 'c' });
    const parked = await settle(engine, instance.id);
    expect(parked).toMatchObject({ state: 'failed', phase: 'forward', currentStep: 'create-order' });
    expect(parked.parkedReason).toBe('failed for good with nothing to undo: create-order refused: customer on credit hold');
    await engine.act(instance.id, 'retry', 'ops');
    expect((await settle(engine, instance.id)).state).toBe('done');
    expect(systems.erp.applied.size).toBe(1);
  });

  it('lets an operator skip a parked step, or compensate instead', async () => {
    const systems = systemsOf();
    systems.desk.down = true;
    const { engine } = await engineOn([orderWorkflow(systems)]);
    const one = (await engine.start('test.order', { customer: 'C1', amount: 1 }, { idempotencyKey: 'a', correlationId: 'c' })).instance;
    const two = (await engine.start('test.order', { customer: 'C2', amount: 2 }, { idempotencyKey: 'b', correlationId: 'c' })).instance;
    await settle(engine, one.id);
    await settle(engine, two.id);

    await engine.act(one.id, 'skip', 'ops');
    const skipped = await settle(engine, one.id);
    expect(skipped.state).toBe('done');
    expect(skipped.steps[2]).toMatchObject({ name: 'notify-desk', state: 'skipped' });

    await engine.act(two.id, 'compensate', 'ops');
    const undone = await settle(engine, two.id);
    expect(undone.state).toBe('compensated');
    // One's ERP order stands; two's was cancelled.
    expect([...systems.erp.applied.keys()]).toEqual([`${one.id}:create-order`]);
  });

  it('runs the work of steps holding one lock one at a time across two replicas, and hands a dead holder’s lock on', async () => {
    const sql = await backend.open();
    let inside = 0;
    let most = 0;
    const workflow: WorkflowDefinition<{ n: number }> = {
      type: 'test.locked',
      steps: [
        {
          name: 'check-and-create',
          run: (context) =>
            context.exclusive('customer:C1', async () => {
              inside += 1;
              most = Math.max(most, inside);
              await new Promise((resolve) => setTimeout(resolve, 30));
              inside -= 1;
              return context.input.n;
            }),
        },
      ],
    };
    const leaseMs = 600;
    const { engine: one } = await engineOn([workflow], { owner: 'one', leaseMs, concurrency: 4 }, sql);
    const { engine: two } = await engineOn([workflow], { owner: 'two', leaseMs, concurrency: 4 }, sql);
    const ids: string[] = [];
    for (let n = 0; n < 8; n++)
      ids.push((await one.start('test.locked', { n }, { idempotencyKey: `lock-${n}`, correlationId: 'c' })).instance.id);
    await Promise.all([one.runDue(), two.runDue(), one.runDue(), two.runDue()]);
    for (let round = 0; round < 40 && (await one.counts()).done < 8; round++) await Promise.all([one.runDue(), two.runDue()]);
    expect((await one.counts()).done).toBe(8);
    expect(most).toBe(1);
    // A holder that died (its lock row left, never released) holds it only until its time runs out.
    await sql.run("INSERT INTO workflow_locks (name, owner, until_at) VALUES ('customer:C1', 'dead', ?)", [Date.now() + leaseMs]);
    const late = (await one.start('test.locked', { n: 9 }, { idempotencyKey: 'lock-late', correlationId: 'c' })).instance.id;
    const started = Date.now();
    for (let round = 0; round < 40 && (await one.get(late))?.state !== 'done'; round++) await one.runDue();
    expect((await one.get(late))?.state).toBe('done');
    expect(Date.now() - started).toBeGreaterThanOrEqual(leaseMs / 2);
  });

  it('publishes a step’s events once its result is recorded, never those of a failed attempt, in sequence per subject', async () => {
    const broker = embeddedBroker({ file: ':memory:', logger });
    const published = async () => (await broker.read({ types: 'concord.order.*' })).map((stored) => stored.event);
    let failFirst = true;
    const workflow: WorkflowDefinition<{ order: string }> = {
      type: 'test.evented',
      steps: [
        {
          name: 'create',
          run: async (context) => {
            context.emit({
              type: 'concord.order.created',
              subject: `order/${context.input.order}`,
              data: { orderNumber: context.input.order, customerId: 'C1', opportunityId: 'OPP-1', status: 'OPEN', expectedShipDate: null },
            });
            if (failFirst && context.input.order === 'SO-1') {
              failFirst = false;
              throw new Error('the ERP timed out');
            }
            return null;
          },
        },
        {
          name: 'cancel',
          run: async (context) => {
            context.emit({
              type: 'concord.order.cancelled',
              subject: `order/${context.input.order}`,
              data: { orderNumber: context.input.order, reason: 'test' },
            });
            return null;
          },
        },
      ],
    };
    const { engine } = await engineOn([workflow], { events: { broker, source: 'concord/test' } });
    const one = (await engine.start('test.evented', { order: 'SO-1' }, { idempotencyKey: 'e1', correlationId: 'corr-1' })).instance;
    await settle(engine, one.id);
    await engine.publishEvents();
    const received = await published();
    // The failed first attempt's event is gone with it: one created, one cancelled, in order.
    expect(received.map((event) => [event.type, event.subject, event.sequence])).toEqual([
      ['concord.order.created', 'order/SO-1', '1'],
      ['concord.order.cancelled', 'order/SO-1', '2'],
    ]);
    expect(received[0]).toMatchObject({
      specversion: '1.0',
      source: 'concord/test',
      correlationid: 'corr-1',
      datacontenttype: 'application/json',
    });
    expect(new Set(received.map((event) => event.id)).size).toBe(2);
    // An event that does not match its schema fails the attempt: nothing of it is recorded.
    const bad: WorkflowDefinition<{ n: number }> = {
      type: 'test.badly-evented',
      steps: [
        {
          name: 'emit',
          retry: { maxAttempts: 1 },
          run: async (context) => (context.emit({ type: 'concord.order.created', subject: 'order/X', data: { n: 1 } }), null),
        },
      ],
    };
    const { engine: other } = await engineOn([bad], { events: { broker, source: 'concord/test' } });
    const badOne = (await other.start('test.badly-evented', { n: 1 }, { idempotencyKey: 'b1', correlationId: 'c' })).instance;
    await settle(other, badOne.id);
    expect((await other.get(badOne.id))?.lastError).toMatch(/concord.order.created: .*must have required property/);
    await other.publishEvents();
    expect(await published()).toHaveLength(2);
    await broker.close();
  });

  it('keeps events in the outbox while the broker refuses them, and publishes each once it takes them again', async () => {
    const taken: CanonicalEvent[] = [];
    let down = true;
    const broker: EventBroker = {
      async publish(events) {
        if (down) throw new Error('broker unreachable');
        taken.push(...events);
      },
      kind: 'embedded',
      consume: () => Promise.reject(new Error('not used')),
      subscribe: () => Promise.reject(new Error('not used')),
      read: async () => [],
      rewind: async () => undefined,
      consumers: async () => [],
      close: async () => undefined,
    };
    const workflow: WorkflowDefinition<{ n: number }> = {
      type: 'test.outboxed',
      steps: [
        {
          name: 'emit',
          run: async (context) => (
            context.emit({
              type: 'concord.customer.onboarded',
              subject: `customer/C${context.input.n}`,
              data: { customerId: `C${context.input.n}`, accountId: 'A' },
            }),
            null
          ),
        },
      ],
    };
    const { engine } = await engineOn([workflow], { events: { broker, source: 'concord/test' } });
    const ids: string[] = [];
    for (let n = 0; n < 5; n++)
      ids.push((await engine.start('test.outboxed', { n }, { idempotencyKey: `o${n}`, correlationId: 'c' })).instance.id);
    for (const id of ids) await settle(engine, id);
    await engine.publishEvents();
    expect(taken).toHaveLength(0);
    down = false;
    await engine.publishEvents();
    const onboarded = () => taken.filter((event) => event.type === 'concord.customer.onboarded');
    expect(
      onboarded()
        .map((event) => event.subject)
        .sort(),
    ).toEqual(['customer/C0', 'customer/C1', 'customer/C2', 'customer/C3', 'customer/C4']);
    // Each workflow's own changes, in its sequence: what a console's workflowChanged follows.
    for (const id of ids)
      expect(
        taken
          .filter((event) => event.subject === `workflow/${id}`)
          .map((event) => [event.type, event.sequence, (event.data as { change: string }).change]),
      ).toEqual([
        ['concord.workflow.changed', '1', 'started'],
        ['concord.workflow.changed', '2', 'step done'],
        ['concord.workflow.changed', '3', 'done'],
      ]);
    await engine.publishEvents();
    expect(onboarded()).toHaveLength(5);
    expect(taken).toHaveLength(20);
  });

  it('ends an instance early, done, its later steps skipped, when a step says the business refused', async () => {
    const ran: string[] = [];
    const workflow: WorkflowDefinition<{ ok: boolean }> = {
      type: 'test.refusable',
      steps: [
        { name: 'check', run: async (context) => (context.input.ok ? 'fine' : endWorkflow({ errors: ['NOT_OK'] }, 'refused: NOT_OK')) },
        { name: 'write', run: async () => (ran.push('write'), null) },
      ],
    };
    const { engine } = await engineOn([workflow]);
    const refused = (await engine.start('test.refusable', { ok: false }, { idempotencyKey: 'r1', correlationId: 'c' })).instance;
    await settle(engine, refused.id);
    const detail = await engine.get(refused.id);
    expect(detail?.state).toBe('done');
    expect(detail?.results).toEqual({ check: { errors: ['NOT_OK'] } });
    expect(detail?.steps.map((step) => [step.name, step.state])).toEqual([
      ['check', 'done'],
      ['write', 'skipped'],
    ]);
    expect(detail?.history.at(-1)).toMatchObject({ event: 'done', detail: 'ended after check: refused: NOT_OK' });
    expect(ran).toEqual([]);
    // The same key again finds it; another input for it is refused; the fingerprint decides what "same" is.
    expect(engine.sameRequest(detail!, { ok: false })).toBe(true);
    expect(engine.sameRequest(detail!, { ok: true })).toBe(false);
    expect((await engine.find('test.refusable', 'r1'))?.id).toBe(refused.id);
  });

  it('runs the instances of one sequence key one after the other, in the order started', async () => {
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const workflow: WorkflowDefinition<{ change: string }> = {
      type: 'test.subscription',
      steps: [
        {
          name: 'apply',
          run: async (context) => {
            if (context.input.change === 'activate') await gate;
            order.push(context.input.change);
            return null;
          },
        },
      ],
    };
    const { engine } = await engineOn([workflow]);
    const ids: string[] = [];
    for (const change of ['activate', 'amend', 'suspend'])
      ids.push(
        (await engine.start('test.subscription', { change }, { idempotencyKey: change, correlationId: 'c', sequenceKey: 'SUB-1' })).instance
          .id,
      );
    const other = (
      await engine.start('test.subscription', { change: 'other' }, { idempotencyKey: 'x', correlationId: 'c', sequenceKey: 'SUB-2' })
    ).instance;
    const first = engine.runDue();
    await settle(engine, other.id);
    // SUB-2 ran; SUB-1's later changes wait behind its first.
    expect(order).toEqual(['other']);
    release();
    await first;
    for (const id of ids) await settle(engine, id);
    expect(order).toEqual(['other', 'activate', 'amend', 'suspend']);
  });

  it('lets another replica take over the step of a replica that died holding it, and refuses the dead one its late result', async () => {
    const systems = systemsOf();
    const { engine, sql } = await engineOn([orderWorkflow(systems)], { leaseMs: 300, owner: 'replica-b' });
    const { instance } = await engine.start('test.order', { customer: 'C1', amount: 1 }, { idempotencyKey: 'k', correlationId: 'c' });
    // Replica a claims the step and dies before it renews the lease or records anything.
    const [claimed] = await claimDue(sql, 'replica-a', Date.now(), 300, 10);
    expect(claimed?.id).toBe(instance.id);
    expect(await engine.runDue()).toBe(0); // leased: b leaves it alone
    await new Promise((resolve) => setTimeout(resolve, 350));
    const done = await settle(engine, instance.id);
    expect(done.state).toBe('done');
    expect(systems.erp.applied.size).toBe(1);
    // a comes back with its result: the instance is no longer its to change.
    expect(await updateInstance(sql, instance.id, { state: 'failed' }, Date.now(), { owner: 'replica-a' })).toBe(false);
    expect((await engine.get(instance.id))?.state).toBe('done');
  });
});
