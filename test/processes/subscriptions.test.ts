import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import type { WorkflowInstance } from '../../platform/workflow/engine.ts';
import { SUBSCRIPTION_WORKFLOW } from '../../processes/src/workflows/subscriptions.ts';
import { newSalesforceId } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import type { ErpConnector } from '../../subgraphs/erp/src/connectors/types.ts';
import { operation, startStack, type Stack } from '../helpers/stack.ts';

/** The sales console's registered operation. */
const APPLY = operation('sales-console', 'ApplySubscriptionChange');

const PLAN = 'CARE-PLAN-1';
const faults = { erpDelayMs: 0 };

describe('the subscription lifecycle: CRM changes carried to ERP billing and desk entitlement, in order, once', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      // The changes here are asked for by the mutation alone (the CRM's events start them in subscriptions-from-crm.test.ts).
      processesEnv: {
        WORKFLOW_BASE_DELAY_MS: '50',
        WORKFLOW_MAX_DELAY_MS: '200',
        WORKFLOW_MAX_ATTEMPTS: '8',
        SUBSCRIPTIONS_FROM_CRM: 'false',
      },
      erp: {
        wrapConnector: (erp: ErpConnector): ErpConnector => ({
          ...erp,
          async applyBillingChange(change) {
            if (faults.erpDelayMs) await new Promise((resolve) => setTimeout(resolve, faults.erpDelayMs));
            return erp.applyBillingChange(change);
          },
        }),
      },
    });
    stack.dbs.erp
      .prepare(
        `INSERT INTO items (id, number, displayName, type, unitPrice, baseUnitOfMeasureCode, inventory) VALUES ('plan-1', ?, 'Care plan (per unit and month)', 'Service', 49, 'MONTH', 0)`,
      )
      .run(PLAN);
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    faults.erpDelayMs = 0;
  });

  const engine = () => stack.processes.engine;
  const used = new Set<string>();
  /** A customer of all three systems billed in USD, with no tier tag in the desk yet. */
  function customer(): { customerId: string; accountId: string; orgId: number } {
    const rows = stack.dbs.erp.prepare(`SELECT number FROM customers WHERE currencyCode = 'USD' ORDER BY number DESC`).all() as {
      number: string;
    }[];
    for (const { number } of rows) {
      if (used.has(number)) continue;
      const account = stack.dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber = ?').get(number) as { Id: string } | undefined;
      const org = stack.dbs.support.prepare('SELECT id, tags FROM organizations WHERE external_id = ?').get(number) as
        { id: number; tags: string } | undefined;
      if (!account || !org || /tier_/.test(org.tags)) continue;
      used.add(number);
      return { customerId: number, accountId: account.Id, orgId: org.id };
    }
    throw new Error('no customer left');
  }
  /** A subscription in the CRM (a Subscription__c row); `crm()` changes it there, as a rep would. */
  function subscription(accountId: string | null, fields: Partial<Record<string, string | number | null>> = {}) {
    const id = newSalesforceId('a0S');
    const row = {
      Status__c: 'Active',
      Quantity__c: 2,
      Support_Tier__c: 'Standard',
      Start_Date__c: '2026-11-01',
      End_Date__c: '2027-10-31',
      Unit_Price__c: 49,
      Billing_Frequency__c: 'Monthly',
      Plan_Code__c: PLAN,
      CurrencyIsoCode: 'USD',
      ...fields,
    };
    stack.dbs.crm
      .prepare(
        `INSERT INTO Subscription__c (Id, Account__c, Plan_Code__c, Quantity__c, Support_Tier__c, Status__c, Start_Date__c, End_Date__c,
           Unit_Price__c, Billing_Frequency__c, CurrencyIsoCode, LastModifiedDate)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-11-01T08:00:00Z')`,
      )
      .run(
        id,
        accountId,
        row.Plan_Code__c,
        row.Quantity__c,
        row.Support_Tier__c,
        row.Status__c,
        row.Start_Date__c,
        row.End_Date__c,
        row.Unit_Price__c,
        row.Billing_Frequency__c,
        row.CurrencyIsoCode,
      );
    const crm = (changes: Record<string, string | number | null>) => {
      const set = Object.keys(changes)
        .map((column) => `${column} = ?`)
        .join(', ');
      stack.dbs.crm.prepare(`UPDATE Subscription__c SET ${set} WHERE Id = ?`).run(...Object.values(changes), id);
    };
    return { id, crm };
  }
  async function apply(subscriptionId: string, change: string, key: string, who: 'sales_rep' | 'support_agent' = 'sales_rep') {
    const { body } = await stack.queryAs(who, APPLY, { input: { subscriptionId, change, idempotencyKey: key } });
    return body as { data: any; errors?: any[] };
  }
  const payloadOf = (body: { data: any }) => body.data.applySubscriptionChange;
  const codes = (body: { data: any }) => payloadOf(body).errors.map((error: any) => error.code);
  const schedule = (id: string) =>
    stack.dbs.erp
      .prepare('SELECT quantity, status, nextInvoiceDate, version, endDate FROM subscriptionBillingSchedules WHERE subscriptionId = ?')
      .get(id) as { quantity: number; status: string; nextInvoiceDate: string | null; version: number; endDate: string | null } | undefined;
  const tierTags = (orgId: number) =>
    (
      JSON.parse((stack.dbs.support.prepare('SELECT tags FROM organizations WHERE id = ?').get(orgId) as { tags: string }).tags) as string[]
    ).filter((tag) => tag.startsWith('tier_'));
  const tasksOf = (accountId: string) =>
    stack.dbs.crm
      .prepare(`SELECT Subject FROM Task WHERE AccountId = ? AND Subject LIKE 'Subscription %' ORDER BY CreatedDate`)
      .all(accountId) as {
      Subject: string;
    }[];
  async function settled(id: string): Promise<WorkflowInstance> {
    const instance = await engine().waitFor(id, (i) => i.state !== 'running' && i.state !== 'waiting', 10_000);
    if (!instance) throw new Error(`no workflow ${id}`);
    return instance;
  }

  it('activates, amends, suspends and renews: the billing schedule and the desk’s tier follow each change, once', async () => {
    const { accountId, orgId, customerId } = customer();
    const sub = subscription(accountId);
    const activated = await apply(sub.id, 'ACTIVATE', 'chg-1');
    expect(activated.errors).toBeUndefined();
    expect(payloadOf(activated)).toMatchObject({ billingVersion: 1, errors: [] });
    expect((await settled(payloadOf(activated).workflow.id)).state).toBe('done');
    expect(schedule(sub.id)).toMatchObject({ quantity: 2, status: 'Active', nextInvoiceDate: '2026-11-01', version: 1 });
    expect(tierTags(orgId)).toEqual(['tier_standard']);

    sub.crm({ Quantity__c: 5, Support_Tier__c: 'Premium' });
    const amended = await apply(sub.id, 'AMEND', 'chg-2');
    expect(payloadOf(amended).billingVersion).toBe(2);
    await settled(payloadOf(amended).workflow.id);
    expect(schedule(sub.id)).toMatchObject({ quantity: 5, status: 'Active', version: 2 });
    expect(tierTags(orgId)).toEqual(['tier_premium']);

    sub.crm({ Status__c: 'Suspended' });
    const suspended = await apply(sub.id, 'SUSPEND', 'chg-3');
    expect(payloadOf(suspended).billingVersion).toBe(3);
    await settled(payloadOf(suspended).workflow.id);
    expect(schedule(sub.id)).toMatchObject({ status: 'Suspended', nextInvoiceDate: null, version: 3 });
    expect(tierTags(orgId)).toEqual([]);

    sub.crm({ Status__c: 'Active', End_Date__c: '2028-10-31' });
    const renewed = await apply(sub.id, 'RENEW', 'chg-4');
    expect(payloadOf(renewed).billingVersion).toBe(4);
    await settled(payloadOf(renewed).workflow.id);
    expect(schedule(sub.id)).toMatchObject({ status: 'Active', version: 4, endDate: '2028-10-31' });
    expect(tierTags(orgId)).toEqual(['tier_premium']);
    // One canonical event per change, in the subscription's sequence.
    await stack.processes.engine.publishEvents();
    const events: CanonicalEvent[] = (await stack.processes.broker.read({ types: 'concord.subscription.changed' }))
      .map((stored) => stored.event)
      .filter((event) => event.subject === `subscription/${sub.id}`);
    expect(
      events.map((event) => [
        event.sequence,
        (event.data as { change: string }).change,
        (event.data as { billingVersion: number }).billingVersion,
      ]),
    ).toEqual([
      ['1', 'ACTIVATE', 1],
      ['2', 'AMEND', 2],
      ['3', 'SUSPEND', 3],
      ['4', 'RENEW', 4],
    ]);
    expect(tasksOf(accountId).map((task) => task.Subject)).toEqual([
      `Subscription activated: 2 × ${PLAN}, standard support`,
      `Subscription amended: 5 × ${PLAN}, premium support`,
      `Subscription suspended: 5 × ${PLAN}, premium support`,
      `Subscription renewed: 5 × ${PLAN}, premium support`,
    ]);
    // The desk and the ERP show it in the graph.
    const { body } = await stack.queryAs(
      'finance',
      `{ customer(id: "${customerId}") { billingSchedules { subscriptionId version status quantity unitPrice { amount } } entitlements { subscriptionId tier active until } } }`,
    );
    expect((body.data as any).customer).toEqual({
      billingSchedules: [{ subscriptionId: sub.id, version: 4, status: 'ACTIVE', quantity: 5, unitPrice: { amount: '49.00' } }],
      entitlements: [{ subscriptionId: sub.id, tier: 'PREMIUM', active: true, until: '2028-10-31' }],
    });
  });

  it('applies a change once however often it is sent: 20 at once', async () => {
    const { accountId } = customer();
    const sub = subscription(accountId);
    const results = await Promise.all(Array.from({ length: 20 }, () => apply(sub.id, 'ACTIVATE', 'dup-20')));
    expect(results.every((body) => body.errors === undefined)).toBe(true);
    expect(new Set(results.map((body) => payloadOf(body).billingVersion))).toEqual(new Set([1]));
    const instances = (await engine().list({ type: SUBSCRIPTION_WORKFLOW, limit: 1000 })).filter((i) =>
      i.idempotencyKey.includes('"dup-20"'),
    );
    expect(instances).toHaveLength(1);
    await settled(instances[0]!.id);
    expect(schedule(sub.id)?.version).toBe(1);
    expect(tasksOf(accountId)).toHaveLength(1);
  });

  it('carries out the changes of one subscription in the order asked, a later one waiting for an earlier one', async () => {
    const { accountId } = customer();
    const sub = subscription(accountId);
    await settled(payloadOf(await apply(sub.id, 'ACTIVATE', 'order-1')).workflow.id);
    // The ERP is slow: the amendment is still being billed when the suspension is asked.
    faults.erpDelayMs = 400;
    sub.crm({ Quantity__c: 3 });
    const amend = apply(sub.id, 'AMEND', 'order-2');
    await new Promise((resolve) => setTimeout(resolve, 100));
    sub.crm({ Status__c: 'Suspended' });
    const suspend = apply(sub.id, 'SUSPEND', 'order-3');
    const [amended, suspended] = await Promise.all([amend, suspend]);
    expect(payloadOf(amended).billingVersion).toBe(2);
    expect(payloadOf(suspended).billingVersion).toBe(3);
    await settled(payloadOf(suspended).workflow.id);
    const changes = stack.dbs.erp
      .prepare('SELECT version FROM subscriptionBillingChanges WHERE subscriptionId = ? ORDER BY appliedDateTime, version')
      .all(sub.id) as { version: number }[];
    expect(changes.map((change) => change.version)).toEqual([1, 2, 3]);
    expect(schedule(sub.id)).toMatchObject({ quantity: 3, status: 'Suspended', version: 3 });
  });

  it('refuses what the CRM does not show, what the ERP cannot bill, and callers who may not ask', async () => {
    const { accountId } = customer();
    const active = subscription(accountId);
    expect(codes(await apply(active.id, 'SUSPEND', 'rule-1'))).toEqual(['CHANGE_NOT_IN_CRM']);
    expect(codes(await apply(newSalesforceId('a0S'), 'ACTIVATE', 'rule-2'))).toEqual(['SUBSCRIPTION_NOT_FOUND']);
    expect(codes(await apply(subscription(null).id, 'ACTIVATE', 'rule-3'))).toEqual(['SUBSCRIPTION_HAS_NO_CUSTOMER']);
    const unknownPlan = subscription(accountId, { Plan_Code__c: 'NO-SUCH-PLAN' });
    const refused = await apply(unknownPlan.id, 'ACTIVATE', 'rule-4');
    expect(codes(refused)).toEqual(['UNKNOWN_PLAN']);
    expect((await settled(payloadOf(refused).workflow.id)).state).toBe('done');
    expect(schedule(unknownPlan.id)).toBeUndefined();
    const euro = subscription(accountId, { CurrencyIsoCode: 'EUR' });
    expect(codes(await apply(euro.id, 'ACTIVATE', 'rule-5'))).toEqual(['CURRENCY_MISMATCH']);
    expect((await apply(active.id, 'ACTIVATE', 'rule-6', 'support_agent')).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});
