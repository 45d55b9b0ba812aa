import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runOutboxCli } from '../../tools/outbox.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { Outbox } from '../../platform/outbox.ts';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import type { ErpConnector } from '../../subgraphs/erp/src/connectors/types.ts';
import type { SupportConnector } from '../../subgraphs/support/src/connectors/types.ts';
import { createLogger } from '../../platform/logger.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { requestHash } from '../../subgraphs/erp/src/returns/process.ts';
import { AS_OF, operation, startStack, STACK_SUBGRAPH_TIMEOUT_MS, type Stack, type Who } from '../helpers/stack.ts';

const CREATE = operation('agent-console', 'CreateReturnAuthorization');

/** An outage of a system, as its adapter reports one. */
function outage(): Error {
  return Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
}

interface Candidate {
  caseId: string;
  customerId: string;
  serialNumber: string;
  orderNumber: string;
}

/** Switches that make one write path of a system fail, as if the system were down. */
const faults = { crmDown: false, deskWritesDown: false, deskDown: false, erpTimesOutAfterCommit: 0, erpReadDelayMs: 0 };

describe('return authorizations from a support case', () => {
  let stack: Stack;
  let processDb: Database;
  const processDir = mkdtempSync(join(tmpdir(), 'concord-returns-'));
  const processFile = join(processDir, 'processes.sqlite');
  let outbox: Outbox;
  const logLines: string[] = [];

  beforeAll(async () => {
    processDb = openDatabase(processFile);
    outbox = new Outbox(processDb);
    stack = await startStack({
      logLines,
      erpEnv: {
        OUTBOX_BASE_DELAY_MS: '5',
        OUTBOX_MAX_DELAY_MS: '20',
        OUTBOX_MAX_ATTEMPTS: '4',
        OUTBOX_POLL_MS: '3600000',
        RMA_AGENT_LIMIT: '20000',
      },
      erp: {
        processDatabase: processDb,
        wrapConnector: (erp: ErpConnector): ErpConnector => ({
          ...erp,
          // A remote ERP answers after a while: time for another request to read the same facts.
          async returnedQuantities(query) {
            const answer = await erp.returnedQuantities(query);
            if (faults.erpReadDelayMs) await new Promise((resolve) => setTimeout(resolve, faults.erpReadDelayMs));
            return answer;
          },
          async createReturnOrder(order) {
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
          logActivity: (activity) => (faults.crmDown ? Promise.reject(outage()) : crm.logActivity(activity)),
        }),
      },
      support: {
        wrapConnector: (desk: SupportConnector): SupportConnector => ({
          ...desk,
          casesByIds: (ids) => (faults.deskDown ? Promise.reject(outage()) : desk.casesByIds(ids)),
          applyCaseUpdate: (update) => (faults.deskWritesDown ? Promise.reject(outage()) : desk.applyCaseUpdate(update)),
        }),
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(processDir, { recursive: true, force: true });
  });
  beforeEach(() => {
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

  /** Runs outbox rounds until nothing is due (retries come due after their short test backoff). */
  async function drain(): Promise<void> {
    for (let round = 0; round < 40; round += 1) {
      await stack.erp.drainOutbox();
      if (outbox.list('pending').length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
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
    for (const down of ['crmDown', 'deskWritesDown'] as const) {
      const c = candidate();
      faults[down] = true;
      const body = await create(serialReturn(c, `outage-${down}`));
      const rma = body.data.createReturnAuthorization.returnAuthorization.number as string;
      await stack.erp.drainOutbox();
      await stack.erp.drainOutbox();
      const stuck = outbox.list('pending').filter((entry) => entry.dedupeKey.startsWith(rma));
      expect(stuck.length, down).toBe(1);
      expect(stuck[0]!.attempts, down).toBeGreaterThan(0);
      faults[down] = false;
      await drain();
      expect(notesAbout(c.caseId, rma), down).toHaveLength(1);
      expect(tasksAbout(rma), down).toHaveLength(1);
      expect(returnOrders(c.caseId), down).toHaveLength(1);
    }
  });

  it('creates one RMA when the ERP commits and then times out', async () => {
    const c = candidate();
    faults.erpTimesOutAfterCommit = 1;
    const failed = await create(serialReturn(c, 'timeout-1'));
    expect(failed.errors?.[0]?.extensions).toMatchObject({ code: 'SYSTEM_UNAVAILABLE', serviceName: 'erp' });
    const retried = await create(serialReturn(c, 'timeout-1'));
    expect(retried.data.createReturnAuthorization.errors).toEqual([]);
    expect(returnOrders(c.caseId)).toHaveLength(1);
    expect(returnOrders(c.caseId)[0]!.number).toBe(retried.data.createReturnAuthorization.returnAuthorization.number);
  });

  it('dead-letters a delivery after its attempts, and delivers it once when replayed', async () => {
    const c = candidate();
    faults.crmDown = true;
    const rma = (await create(serialReturn(c, 'dead-1'))).data.createReturnAuthorization.returnAuthorization.number as string;
    await drain();
    const [dead] = outbox.list('dead').filter((entry) => entry.dedupeKey === `${rma}:crm-activity`);
    expect(dead).toMatchObject({ attempts: 4, kind: 'crm.activity' });
    expect(events('outbox.dead_lettered').some((event) => event.outboxId === dead!.id)).toBe(true);
    faults.crmDown = false;
    // What an operator runs: npm run outbox -- list --status dead, then replay <id>.
    const listed: string[] = [];
    expect(runOutboxCli(['list', '--status', 'dead'], (line) => listed.push(line), { PROCESS_DATABASE: processFile })).toBe(0);
    expect(listed.join('\n')).toContain(`${rma}:crm-activity`);
    expect(runOutboxCli(['replay', String(dead!.id)], (line) => listed.push(line), { PROCESS_DATABASE: processFile })).toBe(0);
    await drain();
    expect(outbox.get(dead!.id)!.status).toBe('delivered');
    expect(tasksAbout(rma)).toHaveLength(1);
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

  it('answers IDEMPOTENCY_KEY_IN_PROGRESS with a retry hint within the gateway deadline, and frees a dead holder’s key long before its lease', async () => {
    const c = candidate();
    const variables = serialReturn(c, 'held-1');
    const scope = 'support_agent@test.example';
    const hash = requestHash({ ...variables.input, resolution: 'REPLACE' } as never);
    // Another ERP process holds the key (and beats, as a live one does), then dies.
    const script = join(processDir, 'holder.ts');
    writeFileSync(
      script,
      `import { IdempotencyStore } from ${JSON.stringify(new URL('../../platform/idempotency.ts', import.meta.url).pathname)};
       import { openDatabase } from ${JSON.stringify(new URL('../../platform/sqlite.ts', import.meta.url).pathname)};
       const store = new IdempotencyStore(openDatabase(${JSON.stringify(processFile)}), { ttlMs: 86_400_000, leaseMs: 300_000, holderTimeoutMs: 5_000 });
       setInterval(() => store.heartbeat(), 1_000);
       console.log(JSON.stringify(store.claim(${JSON.stringify(scope)}, 'held-1', ${JSON.stringify(hash)})));`,
    );
    const holder = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const claimed = await new Promise<string>((resolve) => holder.stdout.once('data', (chunk) => resolve(String(chunk))));
    expect(JSON.parse(claimed).kind).toBe('new');

    const started = Date.now();
    const busy = await create(variables);
    const waited = Date.now() - started;
    expect(busy.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS');
    expect(busy.errors?.[0]?.extensions?.retryAfterMs).toBeGreaterThan(0);
    expect(waited).toBeLessThan(STACK_SUBGRAPH_TIMEOUT_MS);

    holder.kill('SIGKILL');
    const killed = Date.now();
    let body = busy;
    for (let tries = 0; tries < 10 && body.errors?.[0]?.extensions?.code === 'IDEMPOTENCY_KEY_IN_PROGRESS'; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, Number(body.errors![0]!.extensions!.retryAfterMs)));
      body = await create(variables);
    }
    const freedAfter = Date.now() - killed;
    expect(body.errors).toBeUndefined();
    expect(body.data.createReturnAuthorization.returnAuthorization.number).toMatch(/^RMA-/);
    // The claim's lease is five minutes; the dead holder's key is free within seconds.
    expect(freedAfter).toBeLessThan(15_000);
    console.log(`in progress answered after ${waited} ms; dead holder's key free ${freedAfter} ms after the kill`);
  }, 40_000);
});

describe('the return process’s audit trail', () => {
  it('is logged at LOG_LEVEL=warn', async () => {
    const lines: string[] = [];
    const stack = await startStack({
      erp: { logger: createLogger('erp', 'warn', { write: (line: string) => void lines.push(line) }) },
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
  it('waits for a key in progress less than the gateway’s deadline, and refuses to start otherwise', () => {
    expect(loadErpConfig({}).returns.idempotencyWaitMs).toBe(5_000);
    expect(loadErpConfig({ SUBGRAPH_TIMEOUT_MS: '3000' }).returns.idempotencyWaitMs).toBe(1_500);
    expect(() => loadErpConfig({ IDEMPOTENCY_WAIT_MS: '10000' })).toThrow(/IDEMPOTENCY_WAIT_MS: must be less than SUBGRAPH_TIMEOUT_MS/);
    expect(loadErpConfig({ RMA_AGENT_LIMIT_WINDOW_HOURS: '8' }).returns.agentLimitWindowHours).toBe(8);
  });
});
