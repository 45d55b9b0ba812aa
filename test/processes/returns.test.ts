import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConnectorError } from '../../platform/errors.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import type { WorkflowInstance } from '../../platform/workflow/engine.ts';
import { sqliteExecutor } from '../../platform/workflow/sql.ts';
import { loadProcessesConfig } from '../../processes/src/config.ts';
import { RETURN_STEPS, RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import type { ErpConnector } from '../../subgraphs/erp/src/connectors/types.ts';
import type { SupportConnector } from '../../subgraphs/support/src/connectors/types.ts';
import { runWorkflowsCli } from '../../tools/workflows.ts';
import { AS_OF, operation, startStack, STACK_SUBGRAPH_TIMEOUT_MS, type Stack, type Who } from '../helpers/stack.ts';

const CREATE = operation('agent-console', 'CreateReturnAuthorization');

/** An outage of a system, as its adapter reports one. */
function outage(system: string): Error {
  return new ConnectorError(system, `${system}: connection refused`);
}

interface Candidate {
  caseId: string;
  customerId: string;
  serialNumber: string;
  orderNumber: string;
}

/** Switches that make one write path of a system fail, as if the system were down. */
const faults = { crmDown: false, deskWritesDown: false, deskDown: false, erpDown: false, erpTimesOutAfterCommit: 0, erpReadDelayMs: 0 };

describe('return authorizations from a support case', () => {
  let stack: Stack;
  // The process service's store, which the operator's command opens too.
  const sql = sqliteExecutor(openDatabase(':memory:'));
  const logLines: string[] = [];

  beforeAll(async () => {
    stack = await startStack({
      logLines,
      // Retries within tens of ms, parked after 6 attempts (about half a second).
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '6', RMA_AGENT_LIMIT: '20000' },
      processes: { sql },
      erp: {
        wrapConnector: (erp: ErpConnector): ErpConnector => ({
          ...erp,
          // A remote ERP answers after a while: time for another request to read the same facts.
          async returnedQuantities(query) {
            const answer = await erp.returnedQuantities(query);
            if (faults.erpReadDelayMs) await new Promise((resolve) => setTimeout(resolve, faults.erpReadDelayMs));
            return answer;
          },
          async createReturnOrder(order) {
            if (faults.erpDown) throw new ConnectorError('erp', 'createReturnOrder: connection refused');
            const created = await erp.createReturnOrder(order);
            if (faults.erpTimesOutAfterCommit > 0) {
              faults.erpTimesOutAfterCommit -= 1;
              // What the adapter reports when its call times out: the order committed all the same.
              throw new ConnectorError('erp', 'createReturnOrder timed out');
            }
            return created;
          },
        }),
      },
      crm: {
        wrapConnector: (crm: CrmConnector): CrmConnector => ({
          ...crm,
          logActivity: (activity) => (faults.crmDown ? Promise.reject(outage('crm')) : crm.logActivity(activity)),
        }),
      },
      support: {
        wrapConnector: (desk: SupportConnector): SupportConnector => ({
          ...desk,
          casesByIds: (ids) => (faults.deskDown ? Promise.reject(outage('support')) : desk.casesByIds(ids)),
          applyCaseUpdate: (update) => (faults.deskWritesDown ? Promise.reject(outage('support')) : desk.applyCaseUpdate(update)),
        }),
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    faults.erpDown = false;
    faults.crmDown = false;
    faults.deskWritesDown = false;
    faults.deskDown = false;
    faults.erpTimesOutAfterCommit = 0;
    faults.erpReadDelayMs = 0;
  });

  let used = new Set<string>();
  /** An open case about a unit whose warranty is active (or expired), not used by an earlier test. */
  function candidate(warranty: 'active' | 'expired' = 'active'): Candidate {
    const rows = stack.dbs.support
      .prepare(
        `SELECT t.id AS caseId, o.external_id AS customerId, fs.value AS serialNumber, fo.value AS orderNumber FROM tickets t
         JOIN organizations o ON o.id = t.organization_id
         JOIN ticket_custom_fields fo ON fo.ticket_id = t.id AND fo.field_id = 360000000101
         JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = 360000000102
         WHERE t.status IN ('new', 'open', 'pending', 'hold') ORDER BY t.id`,
      )
      .all() as { caseId: number; customerId: string; serialNumber: string; orderNumber: string }[];
    for (const row of rows) {
      if (used.has(row.serialNumber)) continue;
      const asset = stack.dbs.erp.prepare('SELECT warrantyEndDate FROM serialNumbers WHERE serialNumber = ?').get(row.serialNumber) as
        { warrantyEndDate: string } | undefined;
      if (!asset || (warranty === 'active') !== asset.warrantyEndDate >= AS_OF) continue;
      used.add(row.serialNumber);
      return { ...row, caseId: String(row.caseId) };
    }
    throw new Error(`no open case about a unit with ${warranty} warranty left`);
  }

  const serialReturn = (c: Candidate, key: string, resolution = 'REPLACE') => ({
    input: {
      caseId: c.caseId,
      resolution,
      idempotencyKey: key,
      lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
    },
  });

  async function create(variables: Record<string, unknown>, who: Who = 'support_agent'): Promise<{ data: any; errors?: any[] }> {
    const { body } = await stack.queryAs<{ createReturnAuthorization: any }>(who, CREATE, variables);
    return body as { data: any; errors?: any[] };
  }

  const returnOrders = (caseId: string) =>
    stack.dbs.erp.prepare('SELECT number, externalDocumentNumber FROM salesReturnOrders WHERE caseNumber = ?').all(caseId) as {
      number: string;
      externalDocumentNumber: string;
    }[];
  const notesAbout = (caseId: string, rma: string) =>
    (
      stack.dbs.support.prepare('SELECT body FROM ticket_comments WHERE ticket_id = ? AND public = 0').all(Number(caseId)) as {
        body: string;
      }[]
    ).filter((comment) => comment.body.includes(rma));
  const tasksAbout = (rma: string) =>
    stack.dbs.crm.prepare('SELECT Subject FROM Task WHERE Subject LIKE ?').all(`%${rma}%`) as { Subject: string }[];
  const events = (name: string) => logLines.map((line) => JSON.parse(line)).filter((entry) => entry.event === name);

  const engine = () => stack.processes.engine;
  /** Waits until no return workflow has a step to run (all done, or parked). */
  async function drain(): Promise<void> {
    for (let round = 0; round < 200; round += 1) {
      const active = (await engine().list({ type: RETURN_WORKFLOW, limit: 1000 })).filter(
        (instance) => instance.state === 'running' || instance.state === 'waiting',
      );
      if (active.length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error('return workflows still running');
  }
  /** The return workflow that created an RMA. */
  async function workflowOf(rma: string): Promise<WorkflowInstance> {
    const all = await engine().list({ type: RETURN_WORKFLOW, limit: 1000 });
    const found = all.find(
      (instance) => (instance.results[RETURN_STEPS.order] as { returnNumber?: string } | undefined)?.returnNumber === rma,
    );
    if (!found) throw new Error(`no workflow created ${rma}`);
    return found;
  }
  async function until(id: string, holds: (instance: WorkflowInstance) => boolean, ms = 5_000): Promise<WorkflowInstance> {
    const instance = await engine().waitFor(id, holds, ms);
    if (!instance || !holds(instance)) throw new Error(`workflow ${id} is ${instance?.state} at ${instance?.currentStep}`);
    return instance;
  }

  it('creates the RMA in the ERP, notes it on the case (now pending) and logs it on the CRM account', async () => {
    const c = candidate();
    const body = await create(serialReturn(c, 'happy-1'), { subject: 'alex@example.com', roles: ['support_agent'], customerId: null });
    expect(body.errors).toBeUndefined();
    const payload = body.data.createReturnAuthorization;
    expect(payload.errors).toEqual([]);
    const rma = payload.returnAuthorization;
    expect(rma).toMatchObject({
      status: 'AUTHORIZED',
      resolution: 'REPLACE',
      lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
    });
    expect(rma.number).toMatch(/^RMA-\d+$/);
    expect(returnOrders(c.caseId).map((order) => order.number)).toEqual([rma.number]);

    await drain();
    expect(notesAbout(c.caseId, rma.number)).toHaveLength(1);
    const ticket = stack.dbs.support.prepare('SELECT status FROM tickets WHERE id = ?').get(Number(c.caseId)) as { status: string };
    expect(ticket.status).toBe('pending');
    expect(tasksAbout(rma.number)).toHaveLength(1);
    const account = stack.dbs.crm
      .prepare('SELECT a.AccountNumber FROM Task t JOIN Account a ON a.Id = t.AccountId WHERE t.Subject LIKE ?')
      .get(`%${rma.number}%`) as { AccountNumber: string };
    expect(account.AccountNumber).toBe(c.customerId);

    const viaCase = await stack.query<{ case: any }>(`{ case(id: "${c.caseId}") { status returnAuthorizations { number case { id } } } }`);
    expect(viaCase.body.data!.case).toEqual({ status: 'PENDING', returnAuthorizations: [{ number: rma.number, case: { id: c.caseId } }] });

    const correlated = ['return.requested', 'return.authorized', 'case.updated', 'crm.activity.logged'].map((name) =>
      events(name).find((e) => e.caseId === c.caseId || e.returnNumber === rma.number || e.customerId === c.customerId),
    );
    for (const event of correlated) expect(event).toBeDefined();
    const ids = new Set(correlated.map((event) => event.correlationId));
    expect(ids.size).toBe(1);
  });

  it('returns each broken rule as a business error an agent can act on, writing nothing', async () => {
    const c = candidate();
    const expired = candidate('expired');
    const other = candidate();
    const closed = stack.dbs.support.prepare(`SELECT id FROM tickets WHERE status = 'closed' LIMIT 1`).get() as { id: number };
    const line = stack.dbs.erp
      .prepare(
        `SELECT o.number, l.sequence, l.quantity, l.unitPrice FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId
         WHERE o.customerNumber = ? AND l.shippedQuantity > 0 AND l.quantity >= 2 ORDER BY o.number LIMIT 1`,
      )
      .get(c.customerId) as { number: string; sequence: number; quantity: number } | undefined;
    const cases: [string, Record<string, unknown>, string][] = [
      ['an unknown case', { ...serialReturn(c, 'v1').input, caseId: '987654321' }, 'CASE_NOT_FOUND'],
      ['a closed case', { ...serialReturn(c, 'v2').input, caseId: String(closed.id) }, 'CASE_CLOSED'],
      [
        'another customer’s unit',
        { ...serialReturn(c, 'v3').input, lines: [{ serialNumber: other.serialNumber, quantity: 1, reason: 'DEFECTIVE' }] },
        'NOT_CUSTOMERS_ASSET',
      ],
      [
        'an unknown unit',
        { ...serialReturn(c, 'v4').input, lines: [{ serialNumber: 'SNNOSUCH1', quantity: 1, reason: 'DEFECTIVE' }] },
        'UNKNOWN_ASSET',
      ],
      ['an expired warranty', serialReturn(expired, 'v5').input, 'WARRANTY_EXPIRED'],
      [
        'both a unit and an order line',
        {
          ...serialReturn(c, 'v6').input,
          lines: [
            { serialNumber: c.serialNumber, orderLine: { orderNumber: c.orderNumber, sequence: 10000 }, quantity: 1, reason: 'DEFECTIVE' },
          ],
        },
        'INVALID_LINE',
      ],
      [
        'an order line that does not exist',
        {
          ...serialReturn(c, 'v7').input,
          lines: [{ orderLine: { orderNumber: c.orderNumber, sequence: 999 }, quantity: 1, reason: 'DEFECTIVE' }],
        },
        'UNKNOWN_ORDER_LINE',
      ],
      [
        'another customer’s order',
        {
          ...serialReturn(c, 'v8').input,
          lines: [{ orderLine: { orderNumber: other.orderNumber, sequence: 10000 }, quantity: 1, reason: 'DEFECTIVE' }],
        },
        'NOT_CUSTOMERS_ORDER',
      ],
    ];
    expect(line, 'a shipped line of the customer with 2 or more units').toBeDefined();
    if (line) {
      cases.push([
        'more than was shipped',
        {
          ...serialReturn(c, 'v9').input,
          resolution: 'REFUND',
          lines: [{ orderLine: { orderNumber: line.number, sequence: line.sequence }, quantity: line.quantity + 1, reason: 'WRONG_ITEM' }],
        },
        'QUANTITY_EXCEEDS_SHIPPED',
      ]);
    }
    for (const [name, input, code] of cases) {
      const body = await create({ input });
      expect(body.errors, name).toBeUndefined();
      const payload = body.data.createReturnAuthorization;
      expect(payload.returnAuthorization, name).toBeNull();
      expect(
        payload.errors.map((error: any) => error.code),
        name,
      ).toContain(code);
      expect(payload.errors[0].message.length, name).toBeGreaterThan(10);
    }
    expect(returnOrders(c.caseId)).toEqual([]);
  });

  it('refuses a refund before the invoice is paid, and a line not yet shipped', async () => {
    const c = candidate();
    stack.dbs.erp
      .prepare(`UPDATE salesInvoices SET status = 'Open', remainingAmount = totalAmountIncludingTax WHERE orderNumber = ?`)
      .run(c.orderNumber);
    const refund = await create(serialReturn(c, 'refund-1', 'REFUND'));
    expect(refund.data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['INVOICE_NOT_PAID']);
    const line = stack.dbs.erp
      .prepare('SELECT l.id, l.sequence FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId WHERE o.number = ? LIMIT 1')
      .get(c.orderNumber) as { id: string; sequence: number };
    stack.dbs.erp.prepare('UPDATE salesOrderLines SET shippedQuantity = 0 WHERE id = ?').run(line.id);
    const unshipped = await create({
      input: {
        ...serialReturn(c, 'ship-1').input,
        lines: [{ orderLine: { orderNumber: c.orderNumber, sequence: line.sequence }, quantity: 1, reason: 'DEFECTIVE' }],
      },
    });
    expect(unshipped.data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['NOT_SHIPPED']);
  });

  it('lets an agent authorize up to the limit and a lead above it; no other role at all', async () => {
    const c = candidate();
    const line = stack.dbs.erp
      .prepare(
        `SELECT o.number, l.sequence, l.shippedQuantity AS shipped FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId
         WHERE o.customerNumber = ? AND l.shippedQuantity > 0 AND l.unitPrice * l.shippedQuantity > 21000
           AND o.number IN (SELECT orderNumber FROM salesInvoices WHERE status = 'Paid') ORDER BY o.number LIMIT 1`,
      )
      .get(c.customerId) as { number: string; sequence: number; shipped: number } | undefined;
    expect(line, 'a paid line of the customer worth more than the limit').toBeDefined();
    if (line) {
      const input = {
        caseId: c.caseId,
        resolution: 'REFUND',
        idempotencyKey: 'limit-1',
        lines: [{ orderLine: { orderNumber: line.number, sequence: line.sequence }, quantity: line.shipped, reason: 'NOT_AS_DESCRIBED' }],
      };
      const agent = await create({ input });
      expect(agent.data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['EXCEEDS_APPROVAL_LIMIT']);
      const lead = await create({ input }, 'support_lead');
      expect(lead.data.createReturnAuthorization.errors).toEqual([]);
      expect(lead.data.createReturnAuthorization.returnAuthorization.number).toMatch(/^RMA-/);
    }
    for (const role of ['sales_rep', 'finance'] as const) {
      const body = await create(serialReturn(c, `role-${role}`), role);
      expect(body.errors?.[0]?.extensions?.code, role).toBe('FORBIDDEN');
    }
  });

  it('creates one RMA however often the same request is sent: in sequence, and 20 at once', async () => {
    const c = candidate();
    const first = await create(serialReturn(c, 'dup-1'));
    const again = await create(serialReturn(c, 'dup-1'));
    expect(again.data.createReturnAuthorization.returnAuthorization.number).toBe(
      first.data.createReturnAuthorization.returnAuthorization.number,
    );

    const d = candidate();
    const results = await Promise.all(Array.from({ length: 20 }, () => create(serialReturn(d, 'dup-20'))));
    const numbers = new Set(results.map((body) => body.data?.createReturnAuthorization?.returnAuthorization?.number));
    expect(results.every((body) => body.errors === undefined)).toBe(true);
    expect(numbers.size).toBe(1);
    expect(returnOrders(d.caseId)).toHaveLength(1);
    const instances = (await engine().list({ type: RETURN_WORKFLOW, limit: 1000 })).filter((i) => i.idempotencyKey.includes('"dup-20"'));
    expect(instances).toHaveLength(1);
    await drain();
    const [rma] = [...numbers] as string[];
    expect(notesAbout(d.caseId, rma!)).toHaveLength(1);
    expect(tasksAbout(rma!)).toHaveLength(1);
  });

  it('refuses a reused key with a different input, keeps a stored business error, and scopes keys to the caller', async () => {
    const c = candidate();
    const created = await create(serialReturn(c, 'reuse-1'));
    expect(created.data.createReturnAuthorization.errors).toEqual([]);
    const different = await create({ input: { ...serialReturn(c, 'reuse-1').input, resolution: 'REPAIR' } });
    expect(different.data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['IDEMPOTENCY_KEY_REUSED']);

    const closed = stack.dbs.support.prepare(`SELECT id FROM tickets WHERE status = 'solved' LIMIT 1`).get() as { id: number };
    const input = { ...serialReturn(c, 'stored-1').input, caseId: String(closed.id) };
    expect((await create({ input })).data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['CASE_CLOSED']);
    stack.dbs.support.prepare(`UPDATE tickets SET status = 'open' WHERE id = ?`).run(closed.id);
    // The first result stands for that key, even now that the case is open again.
    expect((await create({ input })).data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['CASE_CLOSED']);

    const d = candidate();
    const mine = await create(serialReturn(d, 'shared-key'), { subject: 'agent-a', roles: ['support_agent'], customerId: null });
    const theirs = await create(
      { input: { ...serialReturn(d, 'shared-key').input } },
      { subject: 'agent-b', roles: ['support_agent'], customerId: null },
    );
    expect(mine.data.createReturnAuthorization.returnAuthorization.number).toMatch(/^RMA-/);
    // Another caller's key is another request: here it meets the unit already being returned.
    expect(theirs.data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['QUANTITY_EXCEEDS_SHIPPED']);
  });

  it('never fails or repeats the RMA when the CRM or the desk is down; delivers once they are back', async () => {
    for (const [down, step] of [
      ['crmDown', RETURN_STEPS.activity],
      ['deskWritesDown', RETURN_STEPS.caseNote],
    ] as const) {
      const c = candidate();
      faults[down] = true;
      const body = await create(serialReturn(c, `outage-${down}`));
      const rma = body.data.createReturnAuthorization.returnAuthorization.number as string;
      const workflow = await workflowOf(rma);
      // The step waits for its next attempt, the error it met on the instance.
      const waiting = await until(workflow.id, (instance) => instance.currentStep === step && instance.attempts > 0);
      expect(waiting.state, down).toBe('waiting');
      expect(waiting.lastError, down).toMatch(/SYSTEM_UNAVAILABLE/);
      faults[down] = false;
      await drain();
      expect((await engine().get(workflow.id))!.state, down).toBe('done');
      expect(notesAbout(c.caseId, rma), down).toHaveLength(1);
      expect(tasksAbout(rma), down).toHaveLength(1);
      expect(returnOrders(c.caseId), down).toHaveLength(1);
    }
  });

  it('creates one RMA when the ERP commits and then times out: the retried step finds it', async () => {
    const c = candidate();
    faults.erpTimesOutAfterCommit = 1;
    const body = await create(serialReturn(c, 'timeout-1'));
    expect(body.errors).toBeUndefined();
    const rma = body.data.createReturnAuthorization.returnAuthorization.number as string;
    expect(returnOrders(c.caseId).map((order) => order.number)).toEqual([rma]);
    const detail = await engine().get((await workflowOf(rma)).id);
    expect(detail!.steps.find((step) => step.name === RETURN_STEPS.order)!.attempts).toBe(2);
    expect(detail!.history.some((entry) => entry.event.startsWith('step failed; retry'))).toBe(true);
  });

  it('parks a step that keeps failing with its reason; the operator retries it and it is done once', async () => {
    const c = candidate();
    faults.crmDown = true;
    const rma = (await create(serialReturn(c, 'dead-1'))).data.createReturnAuthorization.returnAuthorization.number as string;
    const workflow = await until((await workflowOf(rma)).id, (instance) => instance.state === 'failed');
    expect(workflow.currentStep).toBe(RETURN_STEPS.activity);
    expect(workflow.attempts).toBe(6);
    expect(workflow.parkedReason).toMatch(/crm-activity failed 6 times: logCustomerActivity: SYSTEM_UNAVAILABLE/);
    // The RMA and the case note stand: nothing is undone.
    expect(returnOrders(c.caseId)).toHaveLength(1);
    expect(notesAbout(c.caseId, rma)).toHaveLength(1);
    expect(tasksAbout(rma)).toHaveLength(0);
    faults.crmDown = false;
    // What an operator runs: npm run workflows -- list --state failed, then retry <id>.
    const out: string[] = [];
    expect(await runWorkflowsCli(['list', '--state', 'failed'], (line) => out.push(line), {}, { sql })).toBe(0);
    expect(out.join('\n')).toContain(workflow.id);
    expect(await runWorkflowsCli(['retry', workflow.id], (line) => out.push(line), {}, { sql })).toBe(0);
    await drain();
    expect((await engine().get(workflow.id))!.state).toBe('done');
    expect(tasksAbout(rma)).toHaveLength(1);
    expect(notesAbout(c.caseId, rma)).toHaveLength(1);
  });

  /** An open case of the customer who owns a shipped line, and that line (not returned before) with its units. */
  function shippedLine(where: string) {
    return stack.dbs.erp
      .prepare(
        `SELECT o.number AS orderNumber, o.customerNumber AS customerId, l.sequence, l.shippedQuantity AS shipped, l.unitPrice,
           (SELECT MIN(s.serialNumber) FROM serialNumbers s WHERE s.orderNumber = o.number AND s.itemNumber = l.lineObjectNumber) AS serialNumber
         FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId
         WHERE l.shippedQuantity > 0 AND ${where}
           AND o.number IN (SELECT orderNumber FROM salesInvoices WHERE status = 'Paid')
           AND NOT EXISTS (SELECT 1 FROM salesReturnOrderLines r WHERE r.orderNumber = o.number)
         ORDER BY o.number`,
      )
      .all()
      .map((row: any) => {
        if (used.has(row.orderNumber)) return null;
        const ticket = stack.dbs.support
          .prepare(
            `SELECT t.id FROM tickets t JOIN organizations o ON o.id = t.organization_id
             WHERE o.external_id = ? AND t.status IN ('new', 'open', 'pending', 'hold') ORDER BY t.id LIMIT 1`,
          )
          .get(row.customerId) as { id: number } | undefined;
        return ticket ? { ...row, caseId: String(ticket.id) } : null;
      })
      .find((row) => row !== null) as
      | {
          orderNumber: string;
          customerId: string;
          sequence: number;
          shipped: number;
          unitPrice: number;
          serialNumber: string | null;
          caseId: string;
        }
      | undefined;
  }
  const codes = (body: { data: any }) => body.data.createReturnAuthorization.errors.map((e: any) => e.code);
  const refund = (caseId: string, key: string, lines: Record<string, unknown>[]) => ({
    input: { caseId, resolution: 'REFUND', idempotencyKey: key, lines },
  });

  it('returns a unit once whether it is named by serial number or by its order line, across requests and within one', async () => {
    const line = shippedLine('l.lineObjectNumber IN (SELECT itemNumber FROM serialNumbers s WHERE s.orderNumber = o.number)');
    expect(line?.serialNumber).toBeTruthy();
    used.add(line!.orderNumber);
    const { caseId, orderNumber, sequence, shipped, serialNumber } = line!;
    const byLine = (quantity: number) => ({ orderLine: { orderNumber, sequence }, quantity, reason: 'DEFECTIVE' });
    const bySerial = { serialNumber, quantity: 1, reason: 'DEFECTIVE' };
    const lead = 'support_lead' as const;

    // Both forms in one request: the unit and the whole line is one unit too many.
    expect(codes(await create(refund(caseId, 'unit-both', [bySerial, byLine(shipped)]), lead))).toEqual(['QUANTITY_EXCEEDS_SHIPPED']);
    // By serial number, then the whole line by its order line: the line has one unit less left.
    expect(codes(await create(refund(caseId, 'unit-serial', [bySerial]), lead))).toEqual([]);
    expect(codes(await create(refund(caseId, 'unit-line-all', [byLine(shipped)]), lead))).toEqual(['QUANTITY_EXCEEDS_SHIPPED']);
    if (shipped > 1) expect(codes(await create(refund(caseId, 'unit-line-rest', [byLine(shipped - 1)]), lead))).toEqual([]);
    // Everything is returned now: neither form finds a unit left.
    expect(codes(await create(refund(caseId, 'unit-line-more', [byLine(1)]), lead))).toEqual(['QUANTITY_EXCEEDS_SHIPPED']);
    const returned = stack.dbs.erp
      .prepare('SELECT SUM(quantity) AS n FROM salesReturnOrderLines WHERE orderNumber = ?')
      .get(orderNumber) as { n: number };
    expect(returned.n).toBe(shipped);
  });

  it('returns a unit once when requests with different keys ask for it at the same moment', async () => {
    const c = candidate();
    faults.erpReadDelayMs = 50;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        create({
          input: { ...serialReturn(c, `race-${i}`).input, lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }] },
        }),
      ),
    );
    expect(results.every((body) => body.errors === undefined)).toBe(true);
    const created = results.filter((body) => body.data.createReturnAuthorization.returnAuthorization);
    expect(created).toHaveLength(1);
    expect(returnOrders(c.caseId)).toHaveLength(1);
    for (const body of results.filter((b) => !b.data.createReturnAuthorization.returnAuthorization))
      expect(codes(body)).toEqual(['QUANTITY_EXCEEDS_SHIPPED']);
  });

  it('applies the approval limit to what one agent authorizes on one case, so a split return does not pass it', async () => {
    // RMA_AGENT_LIMIT is 20000 here: each unit is below it, the line above it.
    const line = shippedLine('l.unitPrice < 20000 AND l.unitPrice * l.shippedQuantity > 20000');
    expect(line).toBeDefined();
    used.add(line!.orderNumber);
    const { caseId, orderNumber, sequence, shipped, unitPrice } = line!;
    const agent = { subject: 'splitter@example.com', roles: ['support_agent'] as const, customerId: null };
    const results: string[][] = [];
    for (let i = 0; i < shipped; i += 1) {
      const body = await create(refund(caseId, `split-${i}`, [{ orderLine: { orderNumber, sequence }, quantity: 1, reason: 'OTHER' }]), {
        ...agent,
        roles: [...agent.roles],
      });
      results.push(codes(body));
    }
    const authorized = results.filter((r) => r.length === 0).length;
    expect(authorized).toBeGreaterThanOrEqual(1);
    expect(authorized * unitPrice).toBeLessThanOrEqual(20000);
    expect(results.flat()).toContain('EXCEEDS_APPROVAL_LIMIT');
    // A lead may authorize the rest.
    const rest = shipped - authorized;
    const lead = await create(
      refund(caseId, 'split-lead', [{ orderLine: { orderNumber, sequence }, quantity: rest, reason: 'OTHER' }]),
      'support_lead',
    );
    expect(codes(lead)).toEqual([]);
  });

  it('leaves the ERP’s own return order write to the process service: agents and leads are refused it', async () => {
    const c = candidate();
    const direct = /* GraphQL */ `
      mutation ($input: CreateReturnOrderInput!) {
        createReturnOrder(input: $input) {
          returnAuthorization {
            number
          }
        }
      }
    `;
    const input = {
      reference: 'direct-1',
      caseId: c.caseId,
      customerId: c.customerId,
      resolution: 'REPLACE',
      lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
    };
    for (const who of ['support_agent', 'support_lead', 'integration_operator'] as const) {
      const { body } = await stack.queryAs(who, direct, { input });
      expect(body.errors?.[0]?.extensions?.code, who).toBe('FORBIDDEN');
    }
    expect(returnOrders(c.caseId)).toEqual([]);
  });

  it('refuses over-long free text as BAD_USER_INPUT naming the field, writing nothing', async () => {
    const c = candidate();
    const long = await create({ input: { ...serialReturn(c, 'long-note').input, note: 'x'.repeat(100_000) } });
    expect(long.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(long.errors?.[0]?.message).toContain('input.note');
    const serial = await create({
      input: { ...serialReturn(c, 'long-serial').input, lines: [{ serialNumber: 'S'.repeat(10_000), quantity: 1, reason: 'DEFECTIVE' }] },
    });
    expect(serial.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(serial.errors?.[0]?.message).toContain('input.lines[0].serialNumber');
    expect(returnOrders(c.caseId)).toEqual([]);
  });

  it('names the desk when the desk is down during a return', async () => {
    const c = candidate();
    faults.deskDown = true;
    const body = await create(serialReturn(c, 'desk-down'));
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'SYSTEM_UNAVAILABLE', serviceName: 'support' });
    expect(returnOrders(c.caseId)).toEqual([]);
  });
});

describe('a return while the ERP is down', () => {
  const faults = { erpDown: false };
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      // Attempts go on (30, at most 1 s apart) while the agent is answered within a second.
      processesEnv: {
        WORKFLOW_BASE_DELAY_MS: '50',
        WORKFLOW_MAX_DELAY_MS: '1000',
        WORKFLOW_MAX_ATTEMPTS: '30',
        IDEMPOTENCY_WAIT_MS: '1000',
      },
      erp: {
        wrapConnector: (erp: ErpConnector): ErpConnector => ({
          ...erp,
          createReturnOrder: (order) =>
            faults.erpDown ? Promise.reject(new ConnectorError('erp', 'connection refused')) : erp.createReturnOrder(order),
        }),
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers IDEMPOTENCY_KEY_IN_PROGRESS with a retry hint within the gateway deadline while the ERP is down, then the RMA', async () => {
    const c = stack.dbs.support
      .prepare(
        `SELECT t.id AS caseId, fs.value AS serialNumber FROM tickets t
         JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = 360000000102
         JOIN organizations o ON o.id = t.organization_id
         WHERE t.status IN ('new', 'open', 'pending', 'hold') ORDER BY t.id LIMIT 1`,
      )
      .get() as { caseId: number; serialNumber: string };
    faults.erpDown = true;
    const variables = {
      input: {
        caseId: String(c.caseId),
        resolution: 'REFUND',
        idempotencyKey: 'held-1',
        lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
      },
    };
    const started = Date.now();
    const create = async (variables: Record<string, unknown>) =>
      (await stack.queryAs('support_lead', CREATE, variables)).body as { data: any; errors?: any[] };
    const busy = await create(variables);
    const waited = Date.now() - started;
    expect(busy.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS');
    expect(busy.errors?.[0]?.extensions?.retryAfterMs).toBeGreaterThan(0);
    expect(waited).toBeLessThan(STACK_SUBGRAPH_TIMEOUT_MS);
    const id = busy.errors![0]!.extensions!.workflowId as string;
    expect((await stack.processes.engine.get(id))!.lastError).toMatch(/createReturnOrder: SYSTEM_UNAVAILABLE/);
    // Twenty more sendings meanwhile: still one workflow.
    const again = await Promise.all(Array.from({ length: 20 }, () => create(variables)));
    expect(new Set(again.map((body) => body.errors?.[0]?.extensions?.workflowId)).size).toBe(1);
    faults.erpDown = false;
    let body = busy;
    for (let tries = 0; tries < 20 && body.errors?.[0]?.extensions?.code === 'IDEMPOTENCY_KEY_IN_PROGRESS'; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, Number(body.errors![0]!.extensions!.retryAfterMs)));
      body = await create(variables);
    }
    expect(body.errors).toBeUndefined();
    expect(body.data.createReturnAuthorization.returnAuthorization.number).toMatch(/^RMA-/);
    expect(stack.dbs.erp.prepare('SELECT number FROM salesReturnOrders WHERE caseNumber = ?').all(String(c.caseId))).toHaveLength(1);
    console.log(`in progress answered after ${waited} ms`);
  }, 40_000);
});

describe('the return process’s audit trail', () => {
  it('is logged at LOG_LEVEL=warn', async () => {
    const lines: string[] = [];
    const stack = await startStack({
      processes: { logger: createLogger('processes', 'warn', { write: (line: string) => void lines.push(line) }) },
    });
    try {
      const ticket = stack.dbs.support.prepare(`SELECT id FROM tickets WHERE status = 'closed' LIMIT 1`).get() as { id: number };
      await stack.queryAs('support_agent', CREATE, {
        input: {
          caseId: String(ticket.id),
          resolution: 'REPLACE',
          idempotencyKey: 'audit-1',
          lines: [{ serialNumber: 'SNNOSUCH1', quantity: 1, reason: 'DEFECTIVE' }],
        },
      });
      const audits = lines.map((line) => JSON.parse(line)).filter((entry) => entry.event === 'return_authorization');
      expect(audits).toEqual([expect.objectContaining({ audit: true, outcome: 'rejected', caseId: String(ticket.id) })]);
    } finally {
      await stack.stop();
    }
  });
});

describe('the return process’s configuration', () => {
  it('waits for an answer less than the gateway’s deadline, and refuses to start otherwise', () => {
    expect(loadProcessesConfig({}).answerWaitMs).toBe(5_000);
    expect(loadProcessesConfig({ SUBGRAPH_TIMEOUT_MS: '3000' }).answerWaitMs).toBe(1_500);
    expect(() => loadProcessesConfig({ IDEMPOTENCY_WAIT_MS: '10000' })).toThrow(
      /IDEMPOTENCY_WAIT_MS: must be less than SUBGRAPH_TIMEOUT_MS/,
    );
    expect(loadProcessesConfig({ RMA_AGENT_LIMIT_WINDOW_HOURS: '8' }).returns.agentLimitWindowHours).toBe(8);
  });
});
