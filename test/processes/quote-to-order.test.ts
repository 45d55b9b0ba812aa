import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConnectorError } from '../../platform/errors.ts';
import type { WorkflowInstance } from '../../platform/workflow/engine.ts';
import { QUOTE_TO_ORDER_STEPS, QUOTE_TO_ORDER_WORKFLOW } from '../../processes/src/workflows/quoteToOrder.ts';
import { newSalesforceId } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import { CrmRefusal, type CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import type { SupportConnector } from '../../subgraphs/support/src/connectors/types.ts';
import { startStack, type Stack, type Who } from '../helpers/stack.ts';

const CONVERT = /* GraphQL */ `
  mutation Convert($input: ConvertOpportunityToOrderInput!) {
    convertOpportunityToOrder(input: $input) {
      order {
        number
        status
        requestedDeliveryDate
        lines {
          quantity
          product {
            sku
          }
        }
      }
      errors {
        code
        message
        line
      }
      workflow {
        id
        state
      }
    }
  }
`;

/** Switches that make one write of a system fail. */
const faults = { crmWritesDown: false, crmRefuses: false, deskWritesDown: false };

describe('quote to order: a closed-won opportunity becomes an ERP order', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '8' },
      crm: {
        wrapConnector: (crm: CrmConnector): CrmConnector => ({
          ...crm,
          recordOpportunityOrder: (update) =>
            faults.crmWritesDown
              ? Promise.reject(new ConnectorError('crm', 'connection refused'))
              : faults.crmRefuses
                ? Promise.reject(new CrmRefusal('Closed opportunities cannot be edited', 'FIELD_CUSTOM_VALIDATION_EXCEPTION'))
                : crm.recordOpportunityOrder(update),
        }),
      },
      support: {
        wrapConnector: (desk: SupportConnector): SupportConnector => ({
          ...desk,
          recordInstalledBase: (update) =>
            faults.deskWritesDown ? Promise.reject(new ConnectorError('support', 'connection refused')) : desk.recordInstalledBase(update),
        }),
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    faults.crmWritesDown = false;
    faults.crmRefuses = false;
    faults.deskWritesDown = false;
  });

  const engine = () => stack.processes.engine;
  const used = new Set<string>();

  /** A customer known to all three systems, released for ordering in the ERP (terms, tax area, no hold, no limit). */
  function customer(): { customerId: string; accountId: string } {
    const rows = stack.dbs.erp
      .prepare(`SELECT number FROM customers WHERE blocked = ' ' AND paymentTermsId IS NOT NULL AND currencyCode = 'USD' ORDER BY number`)
      .all() as { number: string }[];
    for (const { number } of rows) {
      if (used.has(number)) continue;
      const account = stack.dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber = ?').get(number) as { Id: string } | undefined;
      const organization = stack.dbs.support.prepare('SELECT id FROM organizations WHERE external_id = ?').get(number);
      if (!account || !organization) continue;
      used.add(number);
      stack.dbs.erp.prepare(`UPDATE customers SET taxAreaCode = 'US-TX', creditLimit = 0 WHERE number = ?`).run(number);
      return { customerId: number, accountId: account.Id };
    }
    throw new Error('no customer left');
  }

  /** Items of the ERP with stock. */
  function items(n: number): { sku: string; unitPrice: number; name: string }[] {
    const rows = stack.dbs.erp
      .prepare(`SELECT number AS sku, unitPrice, displayName AS name FROM items WHERE type = 'Inventory' ORDER BY number LIMIT ?`)
      .all(n) as {
      sku: string;
      unitPrice: number;
      name: string;
    }[];
    for (const row of rows) stack.dbs.erp.prepare('UPDATE items SET inventory = 1000 WHERE number = ?').run(row.sku);
    return rows;
  }

  /** An opportunity in the CRM (Salesforce-shaped rows), closed won unless told otherwise. */
  function opportunity(
    accountId: string | null,
    lines: { sku: string; quantity: number; unitPrice: number; name?: string }[],
    stage = 'Closed Won',
  ): string {
    const id = newSalesforceId('006');
    const won = stage === 'Closed Won' ? 1 : 0;
    const closed = stage.startsWith('Closed') ? 1 : 0;
    stack.dbs.crm
      .prepare(
        `INSERT INTO Opportunity (Id, AccountId, Name, StageName, IsClosed, IsWon, CloseDate, Amount, CurrencyIsoCode, LastModifiedDate)
         VALUES (?, ?, ?, ?, ?, ?, '2026-10-30', ?, 'USD', '2026-10-30T10:00:00Z')`,
      )
      .run(
        id,
        accountId,
        `Deal ${id.slice(-6)}`,
        stage,
        closed,
        won,
        lines.reduce((sum, line) => sum + line.quantity * line.unitPrice, 0),
      );
    lines.forEach((line, i) =>
      stack.dbs.crm
        .prepare(
          `INSERT INTO OpportunityLineItem (Id, OpportunityId, ProductCode, Name, Quantity, UnitPrice, TotalPrice, SortOrder)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(newSalesforceId('00k'), id, line.sku, line.name ?? null, line.quantity, line.unitPrice, line.quantity * line.unitPrice, i + 1),
    );
    return id;
  }

  async function convert(opportunityId: string, key: string, who: Who = 'sales_rep'): Promise<{ data: any; errors?: any[] }> {
    const { body } = await stack.queryAs(who, CONVERT, { input: { opportunityId, idempotencyKey: key } });
    return body as { data: any; errors?: any[] };
  }
  const payloadOf = (body: { data: any }) => body.data.convertOpportunityToOrder;
  const codes = (body: { data: any }) => payloadOf(body).errors.map((error: any) => error.code);

  const ordersOf = (customerId: string) =>
    stack.dbs.erp
      .prepare('SELECT number, externalDocumentNumber, requestedDeliveryDate FROM salesOrders WHERE customerNumber = ? AND number LIKE ?')
      .all(customerId, 'SO-2%') as {
      number: string;
      externalDocumentNumber: string;
      requestedDeliveryDate: string;
    }[];
  const tasksOn = (opportunityId: string) =>
    stack.dbs.crm.prepare('SELECT Subject FROM Task WHERE WhatId = ?').all(opportunityId) as { Subject: string }[];
  const installed = (customerId: string) =>
    stack.dbs.support
      .prepare(
        `SELECT r.external_id, r.custom_object_fields FROM custom_object_records r JOIN organizations o ON o.id = r.organization_id
         WHERE o.external_id = ? AND r.custom_object_key = 'installed_product' ORDER BY r.external_id`,
      )
      .all(customerId) as { external_id: string; custom_object_fields: string }[];
  async function settled(id: string, ms = 10_000): Promise<WorkflowInstance> {
    const instance = await engine().waitFor(id, (i) => i.state !== 'running' && i.state !== 'waiting', ms);
    if (!instance) throw new Error(`no workflow ${id}`);
    return instance;
  }

  it('creates the ERP order, writes it back to the opportunity with an activity, and gives the desk the installed base', async () => {
    const { customerId, accountId } = customer();
    const [a, b] = items(2);
    const id = opportunity(accountId, [
      { sku: a!.sku, quantity: 3, unitPrice: a!.unitPrice },
      { sku: b!.sku, quantity: 1, unitPrice: b!.unitPrice },
    ]);
    const body = await convert(id, 'happy-1');
    expect(body.errors).toBeUndefined();
    const payload = payloadOf(body);
    expect(payload.errors).toEqual([]);
    expect(payload.order).toMatchObject({ status: 'OPEN', requestedDeliveryDate: '2026-11-04' });
    expect(payload.order.lines).toEqual([
      { quantity: 3, product: { sku: a!.sku } },
      { quantity: 1, product: { sku: b!.sku } },
    ]);
    expect(ordersOf(customerId).map((order) => order.number)).toEqual([payload.order.number]);

    const workflow = await settled(payload.workflow.id);
    expect(workflow.state).toBe('done');
    const row = stack.dbs.crm
      .prepare(
        'SELECT ERP_Order_Number__c AS number, ERP_Order_Status__c AS status, Expected_Ship_Date__c AS ship FROM Opportunity WHERE Id = ?',
      )
      .get(id);
    expect(row).toEqual({ number: payload.order.number, status: 'OPEN', ship: '2026-11-04' });
    expect(tasksOn(id).map((task) => task.Subject)).toEqual([`ERP order ${payload.order.number} created`]);
    expect(installed(customerId).map((record) => record.external_id)).toEqual(
      [`${payload.order.number}:${a!.sku}`, `${payload.order.number}:${b!.sku}`].sort(),
    );

    // The rep sees it all in the graph: the opportunity's order, resolved by the ERP.
    const { body: view } = await stack.queryAs(
      'sales_rep',
      `{ opportunity(id: "${id}") { stage orderStatus expectedShipDate order { number status } } }`,
    );
    expect(view.data).toEqual({
      opportunity: {
        stage: 'Closed Won',
        orderStatus: 'OPEN',
        expectedShipDate: '2026-11-04',
        order: { number: payload.order.number, status: 'OPEN' },
      },
    });
  });

  it('returns each broken rule as a business error a rep can act on, writing nothing to the ERP', async () => {
    const [item] = items(1);
    const line = { sku: item!.sku, quantity: 1, unitPrice: item!.unitPrice };
    const cases: [string, () => string, string][] = [
      ['an open opportunity', () => opportunity(customer().accountId, [line], 'Negotiation/Review'), 'OPPORTUNITY_NOT_WON'],
      ['no products', () => opportunity(customer().accountId, []), 'OPPORTUNITY_HAS_NO_LINES'],
      ['no account', () => opportunity(null, [line]), 'OPPORTUNITY_HAS_NO_CUSTOMER'],
      [
        'a customer on credit hold',
        () => {
          const c = customer();
          stack.dbs.erp.prepare(`UPDATE customers SET blocked = 'All' WHERE number = ?`).run(c.customerId);
          return opportunity(c.accountId, [line]);
        },
        'CUSTOMER_ON_CREDIT_HOLD',
      ],
      [
        'no payment terms',
        () => {
          const c = customer();
          stack.dbs.erp.prepare('UPDATE customers SET paymentTermsId = NULL WHERE number = ?').run(c.customerId);
          return opportunity(c.accountId, [line]);
        },
        'NO_PAYMENT_TERMS',
      ],
      [
        'no tax area',
        () => {
          const c = customer();
          stack.dbs.erp.prepare('UPDATE customers SET taxAreaCode = NULL WHERE number = ?').run(c.customerId);
          return opportunity(c.accountId, [line]);
        },
        'NO_TAX_AREA',
      ],
      [
        'over the credit limit',
        () => {
          const c = customer();
          stack.dbs.erp.prepare('UPDATE customers SET creditLimit = 1, balanceDue = 0 WHERE number = ?').run(c.customerId);
          return opportunity(c.accountId, [{ ...line, quantity: 5 }]);
        },
        'CREDIT_LIMIT_EXCEEDED',
      ],
      [
        'an unknown product',
        () => opportunity(customer().accountId, [{ sku: 'NO-SUCH-ITEM', quantity: 1, unitPrice: 10 }]),
        'UNKNOWN_PRODUCT',
      ],
      ['more than is on hand', () => opportunity(customer().accountId, [{ ...line, quantity: 5000 }]), 'INSUFFICIENT_STOCK'],
      ['an unknown opportunity', () => newSalesforceId('006'), 'OPPORTUNITY_NOT_FOUND'],
    ];
    let n = 0;
    for (const [name, make, code] of cases) {
      const id = make();
      const customerId = (
        stack.dbs.crm
          .prepare('SELECT a.AccountNumber AS c FROM Opportunity o JOIN Account a ON a.Id = o.AccountId WHERE o.Id = ?')
          .get(id) as { c: string } | undefined
      )?.c;
      const body = await convert(id, `rule-${(n += 1)}`);
      expect(body.errors, name).toBeUndefined();
      expect(payloadOf(body).order, name).toBeNull();
      expect(codes(body), name).toContain(code);
      expect(payloadOf(body).errors[0].message.length, name).toBeGreaterThan(10);
      if (customerId) expect(ordersOf(customerId), name).toEqual([]);
      if (payloadOf(body).workflow) expect((await settled(payloadOf(body).workflow.id)).state, name).toBe('done');
    }
    for (const role of ['support_agent', 'portal_customer'] as const) {
      const body = await convert(newSalesforceId('006'), `role-${role}`, role === 'portal_customer' ? { role, customer: 'C10001' } : role);
      expect(body.errors?.[0]?.extensions?.code, role).toBe('FORBIDDEN');
    }
  });

  it('makes one order, one activity and one installed base however often the request is sent: 20 at once, and with other keys', async () => {
    const { customerId, accountId } = customer();
    const [item] = items(1);
    const id = opportunity(accountId, [{ sku: item!.sku, quantity: 2, unitPrice: item!.unitPrice }]);
    const results = await Promise.all(Array.from({ length: 20 }, () => convert(id, 'dup-20')));
    expect(results.every((body) => body.errors === undefined)).toBe(true);
    const numbers = new Set(results.map((body) => payloadOf(body).order?.number));
    expect(numbers.size).toBe(1);
    const instances = (await engine().list({ type: QUOTE_TO_ORDER_WORKFLOW, limit: 1000 })).filter((i) =>
      i.idempotencyKey.includes('"dup-20"'),
    );
    expect(instances).toHaveLength(1);
    await settled(instances[0]!.id);
    // Another key for the same opportunity: it is ordered already.
    const other = await convert(id, 'dup-other');
    expect(codes(other)).toEqual(['ALREADY_ORDERED']);
    expect(ordersOf(customerId)).toHaveLength(1);
    expect(tasksOn(id)).toHaveLength(1);
    expect(installed(customerId)).toHaveLength(1);
    // The same key again after all that: the first answer.
    expect(payloadOf(await convert(id, 'dup-20')).order.number).toBe([...numbers][0]);
  });

  it('makes one order when different keys ask for one opportunity at the same moment', async () => {
    const { customerId, accountId } = customer();
    const [item] = items(1);
    const id = opportunity(accountId, [{ sku: item!.sku, quantity: 1, unitPrice: item!.unitPrice }]);
    const results = await Promise.all(Array.from({ length: 3 }, (_, i) => convert(id, `race-${i}`)));
    for (const body of results) expect(body.errors).toBeUndefined();
    const ordered = results.filter((body) => payloadOf(body).order).map((body) => payloadOf(body).order.number);
    expect(new Set(ordered).size).toBe(1);
    for (const body of results.filter((b) => !payloadOf(b).order)) expect(codes(body)).toEqual(['ALREADY_ORDERED']);
    for (const body of results) if (payloadOf(body).workflow) await settled(payloadOf(body).workflow.id);
    expect(ordersOf(customerId)).toHaveLength(1);
    expect(tasksOn(id)).toHaveLength(1);
  });

  it('never makes a second order while the CRM is down after the order exists; writes back once it is back', async () => {
    const { customerId, accountId } = customer();
    const [item] = items(1);
    const id = opportunity(accountId, [{ sku: item!.sku, quantity: 1, unitPrice: item!.unitPrice }]);
    faults.crmWritesDown = true;
    const body = await convert(id, 'crm-down-1');
    const number = payloadOf(body).order.number as string;
    const workflowId = payloadOf(body).workflow.id as string;
    const waiting = await engine().waitFor(
      workflowId,
      (i) => i.currentStep === QUOTE_TO_ORDER_STEPS.confirmation && i.attempts >= 2,
      5_000,
    );
    expect(waiting?.state).toBe('waiting');
    expect(waiting?.lastError).toMatch(/recordOpportunityOrder: SYSTEM_UNAVAILABLE/);
    // The rep sends it again meanwhile: the same order.
    expect(payloadOf(await convert(id, 'crm-down-1')).order.number).toBe(number);
    faults.crmWritesDown = false;
    expect((await settled(workflowId)).state).toBe('done');
    expect(ordersOf(customerId).map((order) => order.number)).toEqual([number]);
    expect(tasksOn(id)).toHaveLength(1);
  });

  it('cancels the ERP order when the CRM refuses the write-back for good, and shows it on the workflow', async () => {
    for (const cause of ['refused', 'deleted'] as const) {
      const { customerId, accountId } = customer();
      const [item] = items(1);
      const id = opportunity(accountId, [{ sku: item!.sku, quantity: 1, unitPrice: item!.unitPrice }]);
      if (cause === 'refused') faults.crmRefuses = true;
      else
        // The opportunity is deleted between the order and its write-back.
        faults.crmWritesDown = true;
      const body = await convert(id, `compensate-${cause}`);
      const number = payloadOf(body).order.number as string;
      expect(
        ordersOf(customerId).map((order) => order.number),
        cause,
      ).toEqual([number]);
      if (cause === 'deleted') {
        stack.dbs.crm.prepare('DELETE FROM OpportunityLineItem WHERE OpportunityId = ?').run(id);
        stack.dbs.crm.prepare('DELETE FROM Opportunity WHERE Id = ?').run(id);
        faults.crmWritesDown = false;
      }
      const workflow = await settled(payloadOf(body).workflow.id);
      expect(workflow.state, cause).toBe('compensated');
      expect(workflow.lastError, cause).toMatch(cause === 'refused' ? /REFUSED_BY_SYSTEM/ : /no longer in the CRM/);
      // The ERP order is gone, and the graph says so.
      expect(ordersOf(customerId), cause).toEqual([]);
      const { body: order } = await stack.queryAs('sales_rep', `{ order(number: "${number}") { number } }`);
      expect(order.data, cause).toEqual({ order: null });
      const { body: view } = await stack.queryAs(
        'integration_operator',
        `{ workflow(id: "${workflow.id}") { state steps { name phase state } history { event detail } } }`,
      );
      const shown = (view.data as any).workflow;
      expect(shown.state).toBe('COMPENSATED');
      expect(shown.steps).toContainEqual({ name: QUOTE_TO_ORDER_STEPS.order, phase: 'COMPENSATING', state: 'COMPENSATED' });
      expect(shown.steps).toContainEqual({ name: QUOTE_TO_ORDER_STEPS.installedBase, phase: 'FORWARD', state: 'PENDING' });
      expect(shown.history.map((entry: any) => entry.event)).toContain('step compensated');
      expect(installed(customerId), cause).toEqual([]);
      // Sent again, the request hears what became of it.
      const again = await convert(id, `compensate-${cause}`);
      expect(payloadOf(again).order, cause).toBeNull();
      expect(codes(again), cause).toEqual(['ORDER_CANCELLED']);
      expect(payloadOf(again).errors[0].message, cause).toContain(number);
      faults.crmRefuses = false;
    }
  });

  it('answers WORKFLOW_PARKED to a new request held behind a parked one of its opportunity; retried, both finish with one order', async () => {
    const { customerId, accountId } = customer();
    const [item] = items(1);
    const id = opportunity(accountId, [{ sku: item!.sku, quantity: 1, unitPrice: item!.unitPrice }]);
    faults.crmWritesDown = true;
    const first = payloadOf(await convert(id, 'parked-1'));
    const parked = await engine().waitFor(first.workflow.id, (i) => i.state === 'failed', 10_000);
    expect(parked?.state).toBe('failed');
    expect(parked?.parkedReason).toMatch(/crm-order-confirmation failed 8 times/);
    const second = await convert(id, 'parked-2');
    expect(second.errors?.[0]?.extensions).toMatchObject({ code: 'WORKFLOW_PARKED', workflowId: first.workflow.id });
    faults.crmWritesDown = false;
    await engine().act(first.workflow.id, 'retry', 'test-operator');
    expect((await settled(first.workflow.id)).state).toBe('done');
    const secondId = (await engine().find(QUOTE_TO_ORDER_WORKFLOW, JSON.stringify(['sales_rep@test.example', 'parked-2'])))!.id;
    expect((await settled(secondId)).state).toBe('done');
    expect(ordersOf(customerId).map((order) => order.number)).toEqual([first.order.number]);
    expect(tasksOn(id)).toHaveLength(1);
  });

  it('waits for the desk without touching the order when the desk is down, then records the installed base once', async () => {
    const { customerId, accountId } = customer();
    const [item] = items(1);
    const id = opportunity(accountId, [{ sku: item!.sku, quantity: 4, unitPrice: item!.unitPrice }]);
    faults.deskWritesDown = true;
    const body = await convert(id, 'desk-down-1');
    const workflowId = payloadOf(body).workflow.id as string;
    const waiting = await engine().waitFor(
      workflowId,
      (i) => i.currentStep === QUOTE_TO_ORDER_STEPS.installedBase && i.attempts >= 1,
      5_000,
    );
    expect(waiting?.state).toBe('waiting');
    faults.deskWritesDown = false;
    expect((await settled(workflowId)).state).toBe('done');
    const records = installed(customerId);
    expect(records).toHaveLength(1);
    expect(JSON.parse(records[0]!.custom_object_fields)).toMatchObject({ sku: item!.sku, quantity: 4 });
    expect(ordersOf(customerId)).toHaveLength(1);
  });
});
