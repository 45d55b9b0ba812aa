import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBSCRIPTION_WORKFLOW } from '../../processes/src/workflows/subscriptions.ts';
import { changeAsked } from '../../processes/src/triggers.ts';
import { newSalesforceId } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import { startStack, type Stack } from '../helpers/stack.ts';

/**
 * The subscription lifecycle driven by the CRM's change events: a rep changes a subscription in
 * the CRM and nothing else; the CRM's feed publishes it, the process service asks billing for
 * the change it implies, and the ERP's schedule and the desk's tier follow, once per change.
 */
describe('subscription changes started by the CRM’s events', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200' } });
  });
  afterAll(() => stack?.stop());

  const schedule = (id: string) =>
    stack.dbs.erp.prepare('SELECT quantity, status, version FROM subscriptionBillingSchedules WHERE subscriptionId = ?').get(id) as
      { quantity: number; status: string; version: number } | undefined;
  const until = async <T>(read: () => T, check: (value: T) => boolean, ms = 10_000): Promise<T> => {
    const deadline = Date.now() + ms;
    let value = read();
    while (!check(value)) {
      if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${JSON.stringify(value)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
      value = read();
    }
    return value;
  };
  const workflowsOf = async (id: string) =>
    (await stack.processes.engine.list({ type: SUBSCRIPTION_WORKFLOW, limit: 100 })).filter(
      (instance) => (instance.input as { subscription: { id: string } }).subscription.id === id,
    );

  it('activates, amends and suspends as the CRM changes, each once', async () => {
    const { number: customerId } = stack.dbs.erp
      .prepare(`SELECT number FROM customers WHERE currencyCode = 'USD' ORDER BY number LIMIT 1`)
      .get() as { number: string };
    const { Id: accountId } = stack.dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber = ?').get(customerId) as { Id: string };
    const id = newSalesforceId('a0S');
    stack.dbs.crm
      .prepare(
        `INSERT INTO Subscription__c (Id, Account__c, Plan_Code__c, Quantity__c, Support_Tier__c, Status__c, Start_Date__c, End_Date__c,
           Unit_Price__c, Billing_Frequency__c, CurrencyIsoCode, LastModifiedDate)
         VALUES (?, ?, 'CARE-STANDARD', 2, 'Standard', 'Active', '2026-11-01', '2027-10-31', 60, 'Monthly', 'USD', '2026-11-01T08:00:00Z')`,
      )
      .run(id, accountId);
    expect(
      await until(
        () => schedule(id),
        (row) => row?.version === 1,
      ),
    ).toMatchObject({ quantity: 2, status: 'Active' });

    stack.dbs.crm.prepare('UPDATE Subscription__c SET Quantity__c = 5 WHERE Id = ?').run(id);
    expect(
      await until(
        () => schedule(id),
        (row) => row?.version === 2,
      ),
    ).toMatchObject({ quantity: 5, status: 'Active' });

    stack.dbs.crm.prepare("UPDATE Subscription__c SET Status__c = 'Suspended' WHERE Id = ?").run(id);
    expect(
      await until(
        () => schedule(id),
        (row) => row?.version === 3,
      ),
    ).toMatchObject({ status: 'Suspended' });

    // A change billing does not carry (the description of the line) asks nothing; the event told again neither.
    stack.dbs.crm.prepare("UPDATE Subscription__c SET LastModifiedDate = '2026-11-02T08:00:00Z' WHERE Id = ?").run(id);
    const [latest] = (await stack.broker.read({ types: 'concord.subscription.updated' }))
      .filter((entry) => entry.event.subject === `subscription/${id}`)
      .slice(-1);
    await stack.broker.rewind('processes-crm-subscriptions', 'concord.subscription.updated', {
      time: new Date(Date.parse(latest!.event.time) - 1),
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(schedule(id)?.version).toBe(3);
    const workflows = await workflowsOf(id);
    expect(workflows.map((instance) => (instance.input as { change: string }).change).sort()).toEqual(['ACTIVATE', 'AMEND', 'SUSPEND']);
    expect(workflows.every((instance) => instance.state === 'done')).toBe(true);
  });

  it('decides the change from what the CRM shows against what the ERP bills', () => {
    const billed = {
      subscriptionId: 's',
      quantity: 2,
      unitPrice: { amount: '49.00' },
      frequency: 'MONTHLY' as const,
      status: 'ACTIVE' as const,
      endDate: '2027-10-31',
    };
    const crm = {
      subscriptionId: 's',
      status: 'ACTIVE' as const,
      quantity: 2,
      unitPrice: '49.00',
      frequency: 'MONTHLY' as const,
      endDate: '2027-10-31',
    };
    expect(changeAsked(crm, null)).toBe('ACTIVATE');
    expect(changeAsked(crm, billed)).toBeNull();
    expect(changeAsked({ ...crm, quantity: 3 }, billed)).toBe('AMEND');
    expect(changeAsked({ ...crm, changes: ['Support_Tier__c'] }, billed)).toBe('AMEND');
    expect(changeAsked({ ...crm, endDate: '2028-10-31' }, billed)).toBe('RENEW');
    expect(changeAsked(crm, { ...billed, status: 'SUSPENDED' })).toBe('RENEW');
    expect(changeAsked({ ...crm, status: 'SUSPENDED' }, billed)).toBe('SUSPEND');
    expect(changeAsked({ ...crm, status: 'SUSPENDED' }, { ...billed, status: 'SUSPENDED' })).toBeNull();
    expect(changeAsked({ ...crm, status: 'DRAFT' }, null)).toBeNull();
    expect(changeAsked({ ...crm, deleted: true }, billed)).toBeNull();
  });
});
