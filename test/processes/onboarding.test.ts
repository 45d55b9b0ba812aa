import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConnectorError } from '../../platform/errors.ts';
import type { WorkflowInstance } from '../../platform/workflow/engine.ts';
import { ONBOARDING_STEPS, ONBOARDING_WORKFLOW } from '../../processes/src/workflows/onboarding.ts';
import { newSalesforceId } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import { CrmRefusal, type CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import { operation, startStack, type Stack } from '../helpers/stack.ts';

/** The sales console's registered operation. */
const ONBOARD = operation('sales-console', 'OnboardAccount');

const faults = { crmWritesDown: false, crmRefuses: false };

interface NewAccount {
  name: string;
  street: string | null;
  city: string | null;
  postalCode: string | null;
  country: string | null;
  state: string | null;
  email: string | null;
  taxId: string | null;
  currency: string;
}

describe('customer onboarding: a CRM account becomes an ERP customer, or is told why not', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '8' },
      crm: {
        wrapConnector: (crm: CrmConnector): CrmConnector => ({
          ...crm,
          recordAccountOnboarding: (update) =>
            faults.crmWritesDown
              ? Promise.reject(new ConnectorError('crm', 'connection refused'))
              : faults.crmRefuses
                ? Promise.reject(new CrmRefusal('Accounts in review are locked', 'ENTITY_IS_LOCKED'))
                : crm.recordAccountOnboarding(update),
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
  });

  const engine = () => stack.processes.engine;
  let n = 0;
  /** A new account in the CRM, pending onboarding, with a complete US billing profile unless told otherwise. */
  function account(overrides: Partial<NewAccount> = {}): string {
    n += 1;
    const a: NewAccount = {
      name: `Newco ${n} Industries`,
      street: `${n} Main Street`,
      city: 'Houston',
      state: 'TX',
      postalCode: `7700${n % 10}`,
      country: 'United States',
      email: `ap${n}@newco.example`,
      taxId: `${String(10 + (n % 80)).padStart(2, '0')}-${String(1_000_000 + n).slice(-7)}`,
      currency: 'USD',
      ...overrides,
    };
    const id = newSalesforceId('001');
    stack.dbs.crm
      .prepare(
        `INSERT INTO Account (Id, Name, AccountNumber, Type, BillingStreet, BillingCity, BillingState, BillingPostalCode, BillingCountry,
           Tax_Registration_Number__c, Billing_Email__c, CurrencyIsoCode, Onboarding_Status__c, LastModifiedDate)
         VALUES (?, ?, NULL, 'Prospect', ?, ?, ?, ?, ?, ?, ?, ?, 'Pending', '2026-11-01T08:00:00Z')`,
      )
      .run(id, a.name, a.street, a.city, a.state, a.postalCode, a.country, a.taxId, a.email, a.currency);
    return id;
  }
  async function onboard(accountId: string, key: string, who: 'sales_rep' | 'finance' | 'support_agent' = 'sales_rep') {
    const { body } = await stack.queryAs(who, ONBOARD, { input: { accountId, idempotencyKey: key } });
    return body as { data: any; errors?: any[] };
  }
  const payloadOf = (body: { data: any }) => body.data.onboardAccount;
  const codes = (body: { data: any }) => payloadOf(body).errors.map((error: any) => error.code);
  const crmAccount = (id: string) =>
    stack.dbs.crm
      .prepare('SELECT AccountNumber, Onboarding_Status__c AS status, Onboarding_Reason__c AS reason FROM Account WHERE Id = ?')
      .get(id) as {
      AccountNumber: string | null;
      status: string;
      reason: string | null;
    };
  const erpCustomers = (accountId: string) =>
    stack.dbs.erp.prepare('SELECT number, blocked, taxAreaCode FROM customers WHERE crmReference = ?').all(`crm-account:${accountId}`) as {
      number: string;
      blocked: string;
      taxAreaCode: string;
    }[];
  const tasksOn = (accountId: string) =>
    stack.dbs.crm.prepare('SELECT Subject FROM Task WHERE WhatId = ?').all(accountId) as { Subject: string }[];
  async function settled(id: string): Promise<WorkflowInstance> {
    const instance = await engine().waitFor(id, (i) => i.state !== 'running' && i.state !== 'waiting', 10_000);
    if (!instance) throw new Error(`no workflow ${id}`);
    return instance;
  }

  it('makes the account an ERP customer, writes the number and the outcome back, and lets it order', async () => {
    const id = account();
    const body = await onboard(id, 'happy-1');
    expect(body.errors).toBeUndefined();
    const payload = payloadOf(body);
    expect(payload.errors).toEqual([]);
    expect(payload.customer.id).toMatch(/^C\d+$/);
    const [created] = erpCustomers(id);
    expect(created).toMatchObject({ number: payload.customer.id, blocked: ' ', taxAreaCode: 'US-TX' });
    expect((await settled(payload.workflow.id)).state).toBe('done');
    expect(crmAccount(id)).toEqual({ AccountNumber: payload.customer.id, status: 'Active', reason: null });
    expect(tasksOn(id).map((task) => task.Subject)).toEqual([`Onboarded: ERP customer ${payload.customer.id}`]);

    const { body: view } = await stack.queryAs(
      'finance',
      `{ account(id: "${id}") { onboardingStatus customer { id billing { paymentTerms } } } }`,
    );
    expect(view.data).toEqual({
      account: { onboardingStatus: 'ACTIVE', customer: { id: payload.customer.id, billing: { paymentTerms: 'Net 30 days' } } },
    });

    // Onboarded, it can order: a won opportunity becomes an order.
    const item = stack.dbs.erp.prepare(`SELECT number, unitPrice FROM items WHERE type = 'Inventory' ORDER BY number LIMIT 1`).get() as {
      number: string;
      unitPrice: number;
    };
    stack.dbs.erp.prepare('UPDATE items SET inventory = 100 WHERE number = ?').run(item.number);
    const opportunity = newSalesforceId('006');
    stack.dbs.crm
      .prepare(
        `INSERT INTO Opportunity (Id, AccountId, Name, StageName, IsClosed, IsWon, CloseDate, Amount, CurrencyIsoCode, LastModifiedDate)
         VALUES (?, ?, 'First order', 'Closed Won', 1, 1, '2026-11-01', ?, 'USD', '2026-11-01T09:00:00Z')`,
      )
      .run(opportunity, id, item.unitPrice);
    stack.dbs.crm
      .prepare(
        `INSERT INTO OpportunityLineItem (Id, OpportunityId, ProductCode, Quantity, UnitPrice, TotalPrice, SortOrder) VALUES (?, ?, ?, 1, ?, ?, 1)`,
      )
      .run(newSalesforceId('00k'), opportunity, item.number, item.unitPrice, item.unitPrice);
    const { body: order } = await stack.queryAs(
      'sales_rep',
      `mutation { convertOpportunityToOrder(input: { opportunityId: "${opportunity}", idempotencyKey: "first-order" }) { order { number customer { id } } errors { code } } }`,
    );
    expect((order.data as any).convertOpportunityToOrder).toMatchObject({ errors: [], order: { customer: { id: payload.customer.id } } });
  });

  it('refuses an incomplete billing profile, a malformed tax number and a duplicate, and tells the account why', async () => {
    const existing = stack.dbs.erp
      .prepare(
        `SELECT displayName, postalCode, taxRegistrationNumber FROM customers WHERE country = 'US' AND postalCode IS NOT NULL ORDER BY number LIMIT 1`,
      )
      .get() as { displayName: string; postalCode: string; taxRegistrationNumber: string };
    const cases: [string, Partial<NewAccount>, string][] = [
      ['no street', { street: null }, 'MISSING_BILLING_ADDRESS'],
      ['a country the ERP does not serve', { country: 'Atlantis' }, 'MISSING_BILLING_ADDRESS'],
      ['no billing email', { email: null }, 'MISSING_BILLING_EMAIL'],
      ['a malformed email', { email: 'accounts payable' }, 'INVALID_BILLING_EMAIL'],
      ['no tax number', { taxId: null }, 'MISSING_TAX_ID'],
      ['a tax number not of its country', { taxId: 'DE123456789' }, 'INVALID_TAX_ID'],
      ['the tax number of a customer', { taxId: existing.taxRegistrationNumber }, 'DUPLICATE_CUSTOMER'],
      [
        'the name and postal code of a customer',
        { name: existing.displayName.toUpperCase(), postalCode: existing.postalCode },
        'DUPLICATE_CUSTOMER',
      ],
    ];
    for (const [name, overrides, code] of cases) {
      const id = account(overrides);
      const body = await onboard(id, `rule-${name}`);
      expect(body.errors, name).toBeUndefined();
      expect(payloadOf(body).customer, name).toBeNull();
      expect(codes(body), name).toContain(code);
      expect(erpCustomers(id), name).toEqual([]);
      expect((await settled(payloadOf(body).workflow.id)).state, name).toBe('done');
      const written = crmAccount(id);
      expect(written.status, name).toBe('Rejected');
      expect(written.AccountNumber, name).toBeNull();
      expect(written.reason, name).toContain(payloadOf(body).errors[0].message.slice(0, 20));
      expect(
        tasksOn(id).map((task) => task.Subject),
        name,
      ).toEqual(['Onboarding refused by the ERP']);
    }
    const active = stack.dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber IS NOT NULL LIMIT 1').get() as { Id: string };
    expect(codes(await onboard(active.Id, 'rule-active'))).toEqual(['ALREADY_ONBOARDED']);
    expect(codes(await onboard(newSalesforceId('001'), 'rule-unknown'))).toEqual(['ACCOUNT_NOT_FOUND']);
    expect((await onboard(account(), 'rule-role', 'support_agent')).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('makes one customer and one activity however often the request is sent: 20 at once', async () => {
    const id = account();
    const results = await Promise.all(Array.from({ length: 20 }, () => onboard(id, 'dup-20')));
    expect(results.every((body) => body.errors === undefined)).toBe(true);
    expect(new Set(results.map((body) => payloadOf(body).customer?.id)).size).toBe(1);
    const instances = (await engine().list({ type: ONBOARDING_WORKFLOW, limit: 1000 })).filter((i) =>
      i.idempotencyKey.includes('"dup-20"'),
    );
    expect(instances).toHaveLength(1);
    await settled(instances[0]!.id);
    expect(erpCustomers(id)).toHaveLength(1);
    expect(tasksOn(id)).toHaveLength(1);
    expect(codes(await onboard(id, 'dup-other'))).toEqual(['ALREADY_ONBOARDED']);
  });

  it('never makes a second customer while the CRM is down after the ERP has one; writes back once it is back', async () => {
    const id = account();
    faults.crmWritesDown = true;
    const body = await onboard(id, 'crm-down-1');
    const number = payloadOf(body).customer.id as string;
    const workflowId = payloadOf(body).workflow.id as string;
    const waiting = await engine().waitFor(workflowId, (i) => i.currentStep === ONBOARDING_STEPS.outcome && i.attempts >= 2, 5_000);
    expect(waiting?.state).toBe('waiting');
    expect(payloadOf(await onboard(id, 'crm-down-1')).customer.id).toBe(number);
    faults.crmWritesDown = false;
    expect((await settled(workflowId)).state).toBe('done');
    expect(erpCustomers(id).map((c) => c.number)).toEqual([number]);
    expect(crmAccount(id).AccountNumber).toBe(number);
  });

  it('blocks the new ERP customer again when the CRM refuses the outcome for good', async () => {
    const id = account();
    faults.crmRefuses = true;
    const body = await onboard(id, 'refused-1');
    const number = payloadOf(body).customer.id as string;
    const workflow = await settled(payloadOf(body).workflow.id);
    expect(workflow.state).toBe('compensated');
    expect(workflow.lastError).toMatch(/REFUSED_BY_SYSTEM/);
    expect(erpCustomers(id)).toEqual([expect.objectContaining({ number, blocked: 'All' })]);
    expect(crmAccount(id).status).toBe('Pending');
    const detail = await engine().get(workflow.id);
    expect(detail!.steps).toContainEqual(
      expect.objectContaining({ name: ONBOARDING_STEPS.customer, phase: 'compensating', state: 'compensated' }),
    );
    // Sent again, the request hears what became of it; a new request meets the blocked customer.
    expect(codes(await onboard(id, 'refused-1'))).toEqual(['ONBOARDING_UNDONE']);
    faults.crmRefuses = false;
    const anew = await onboard(id, 'refused-2');
    expect(codes(anew)).toEqual(['CUSTOMER_BLOCKED']);
    await settled(payloadOf(anew).workflow.id);
    expect(crmAccount(id)).toMatchObject({ status: 'Rejected', AccountNumber: null });
    expect(erpCustomers(id)).toHaveLength(1);
  });
});
