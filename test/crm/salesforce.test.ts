import { Connection } from 'jsforce';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createConnectorTelemetry, silentTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createResilience, DEFAULT_POLICY, type ResiliencePolicy } from '../../platform/resilience.ts';
import { newSalesforceId } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import { createEmbeddedCrmConnector } from '../../subgraphs/crm/src/connectors/embedded/index.ts';
import { createSalesforceConnector, SalesforceError, type SalesforceConnector } from '../../subgraphs/crm/src/connectors/salesforce.ts';
import {
  CrmRefusal,
  type AccountOnboardingUpdate,
  type NewActivity,
  type OpportunityOrderUpdate,
} from '../../subgraphs/crm/src/connectors/types.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { startSalesforceServer, type LoggedRequest, type SalesforceServer } from '../vendors/salesforce/server.ts';

const dbs = seededDatabases();
const embedded = createEmbeddedCrmConnector(dbs.crm, silentTelemetry('crm'));

const column = (sql: string) => (dbs.crm.prepare(sql).all() as Record<string, string>[]).map((row) => Object.values(row)[0]!);
const customerIds = column('SELECT AccountNumber FROM Account WHERE AccountNumber IS NOT NULL ORDER BY AccountNumber');
/** Accounts of customers (with a customer number), and of prospects (without one). */
const accountIds = column('SELECT Id FROM Account WHERE AccountNumber IS NOT NULL ORDER BY Id');
const prospectIds = column('SELECT Id FROM Account WHERE AccountNumber IS NULL ORDER BY Id');
const contactIds = column('SELECT Id FROM Contact ORDER BY Id');
const contractNumbers = column('SELECT ContractNumber FROM Contract ORDER BY ContractNumber');
const opportunity = addOpportunities();
const onboarding = addOnboardingAccounts();
const subscription = addSubscriptions();

let server: SalesforceServer;
beforeAll(async () => {
  server = await startSalesforceServer({ db: dbs.crm });
});
afterAll(() => server.close());
beforeEach(() => server.reset());

/** A Salesforce connector on the stand-in, with quick retries and its telemetry's call count. */
function salesforce(auth: { refresh?: () => Promise<string> } = {}, policy: Partial<ResiliencePolicy> = {}) {
  const metrics = createMetrics('crm');
  const telemetry = createConnectorTelemetry('crm', metrics, createLogger('crm', 'silent'));
  const resilience = createResilience('crm', {
    ...DEFAULT_POLICY,
    timeoutMs: 2_000,
    baseDelayMs: 1,
    maxDelayMs: 5,
    breakerThreshold: 1_000,
    ...policy,
  });
  const connector: SalesforceConnector = createSalesforceConnector({
    instanceUrl: server.instanceUrl,
    apiVersion: '59.0',
    auth: { kind: 'accessToken', accessToken: server.accessToken, ...auth },
    telemetry,
    resilience,
  });
  const counted = async () => (await metrics.connectorCalls.get()).values.reduce((sum, { value }) => sum + value, 0);
  return { connector, counted };
}

const byId = <T extends { id: string }>(records: T[]) => [...records].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
const statuses = () => server.requests.map((request) => request.status);
const firstQueries = () => server.requests.filter((request) => request.path === '/query');
const morePages = () => server.requests.filter((request) => request.path.startsWith('/query/'));
/** The IN list of a logged statement, and the length of its WHERE clause. */
function inList(request: LoggedRequest): { values: string[]; whereChars: number } {
  const where = /WHERE (.*)$/.exec(request.soql ?? '')?.[1] ?? '';
  const list = /IN \((.*)\)$/.exec(where)?.[1] ?? '';
  return { values: list.split(',').map((literal) => literal.slice(1, -1)), whereChars: where.length };
}
const tasksWithKey = (key: string) => server.records('Task').filter((task) => task.Concord_Key__c === key);
const orgOpportunity = (id: string) => server.records('Opportunity').find((record) => record.Id === id);
const composites = () => server.requests.filter((request) => request.path === '/composite');
const orgAccount = (id: string) => server.records('Account').find((record) => record.Id === id);
const onboard = (key: string, accountId: string, changes: Partial<AccountOnboardingUpdate> = {}): AccountOnboardingUpdate => ({
  key,
  accountId,
  status: 'ACTIVE',
  customerNumber: 'C80001',
  reason: 'Validated against the tax register',
  subject: 'Customer C80001 created in the ERP',
  description: 'Onboarded from the CRM account',
  activityDate: '2026-11-01',
  ...changes,
});
const order = (key: string, opportunityId: string, changes: Partial<OpportunityOrderUpdate> = {}): OpportunityOrderUpdate => ({
  key,
  opportunityId,
  orderNumber: 'SO-2001',
  orderStatus: 'Open',
  expectedShipDate: '2026-11-20',
  subject: 'Order SO-2001 placed',
  description: 'Booked from the won opportunity',
  activityDate: '2026-11-01',
  ...changes,
});
const activity = (key: string, customerId = customerIds[3]!): NewActivity => ({
  key,
  customerId,
  subject: 'Return authorised',
  description: 'RMA issued for the damaged pump',
  activityDate: '2026-11-01',
});

describe('Salesforce adapter: the same records as the embedded adapter over the same data', () => {
  let connector: SalesforceConnector;
  beforeAll(() => {
    connector = salesforce().connector;
  });

  it('customersByIds: accounts by customer number, owner name through Owner.Name, unknown and wrong-case keys left out', async () => {
    const keys = [...customerIds, 'C99999', customerIds[0]!.toLowerCase(), accountIds[0]!];
    const found = await connector.customersByIds(keys);
    expect(found).toHaveLength(customerIds.length);
    expect(byId(found)).toEqual(byId(await embedded.customersByIds(keys)));
    expect(found.some((customer) => customer.billingAddress?.state === null)).toBe(true);
  });

  it('contactsByIds: by 18-character Id; malformed and 15-character keys find nothing, as in the embedded CRM', async () => {
    const keys = [...contactIds, 'not-an-id', contactIds[0]!.slice(0, 15), `003${'0'.repeat(15)}`];
    const found = await connector.contactsByIds(keys);
    expect(found).toHaveLength(contactIds.length);
    expect(byId(found)).toEqual(byId(await embedded.contactsByIds(keys)));
    server.reset();
    expect(await connector.contactsByIds(['not-an-id'])).toEqual([]);
    expect(await connector.customersByIds([])).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });

  it("contactsByCustomerIds: the same list in the same order (bytewise, so 'de Jong' after 'Smith')", async () => {
    const found = await connector.contactsByCustomerIds(customerIds);
    expect(found).toEqual(await embedded.contactsByCustomerIds(customerIds));
    // The data has names whose bytewise order differs from Salesforce's case-insensitive one.
    expect(found.some((contact, i) => i > 0 && found[i - 1]!.lastName.toUpperCase() > contact.lastName.toUpperCase())).toBe(true);
  });

  it('contractsByIds and contractsByCustomerIds: by contract number, and newest start first', async () => {
    expect(byId(await connector.contractsByIds([...contractNumbers, '99999999']))).toEqual(
      byId(await embedded.contractsByIds([...contractNumbers, '99999999'])),
    );
    expect(await connector.contractsByCustomerIds(customerIds)).toEqual(await embedded.contractsByCustomerIds(customerIds));
  });

  it('logActivity: the same activity as the embedded adapter, a completed Task on the account; null for an unknown customer', async () => {
    const logged = await connector.logActivity(activity('parity-1'));
    const reference = await embedded.logActivity(activity('parity-1'));
    expect(logged).toEqual({ ...reference, id: logged?.id });
    expect(logged?.id).toMatch(/^00T[0-9A-Za-z]{15}$/);
    const task = server.records('Task').find((record) => record.Concord_Key__c === 'parity-1');
    expect(task).toMatchObject({
      Id: logged?.id,
      WhatId: accountIdOf(customerIds[3]!),
      AccountId: accountIdOf(customerIds[3]!),
      Status: 'Completed',
    });

    expect(await connector.logActivity(activity('parity-2', 'C99999'))).toBeNull();
    expect(await embedded.logActivity(activity('parity-2', 'C99999'))).toBeNull();
  });

  it('logActivity: a used key returns the first activity, as the embedded adapter does', async () => {
    const first = activity('parity-3');
    const again = { ...first, subject: 'Something else', activityDate: '2026-11-02' };
    const logged = await connector.logActivity(first);
    await embedded.logActivity(first);
    expect(await connector.logActivity(again)).toEqual(logged);
    expect(await embedded.logActivity(again)).toMatchObject({ subject: first.subject, activityDate: first.activityDate });
  });

  it('opportunitiesByIds: the same opportunities, customer number through Account.AccountNumber; unknown, malformed and 15-character ids left out', async () => {
    const keys = [...opportunity.ids, 'not-an-id', opportunity.open.slice(0, 15), `006${'0'.repeat(15)}`];
    const found = await connector.opportunitiesByIds(keys);
    expect(found).toHaveLength(opportunity.ids.length);
    expect(byId(found)).toEqual(byId(await embedded.opportunitiesByIds(keys)));
    expect(found.find((record) => record.id === opportunity.open)).toMatchObject({
      customerId: customerNumberOf(opportunity.accountOf[opportunity.open]!),
      amount: '12500.50',
      currency: 'EUR',
      isClosed: false,
    });
    expect(found.find((record) => record.id === opportunity.won)).toMatchObject({ isWon: true, erpOrderNumber: 'SO-1001' });
    expect(found.find((record) => record.id === opportunity.unassigned)).toMatchObject({ customerId: null, amount: null });
  });

  it('opportunityLinesByOpportunityIds: the same lines in the same order (by opportunity, SortOrder, then line)', async () => {
    const keys = [...opportunity.ids, 'not-an-id'];
    const found = await connector.opportunityLinesByOpportunityIds(keys);
    expect(found).toEqual(await embedded.opportunityLinesByOpportunityIds(keys));
    expect(found).toHaveLength(opportunity.lines);
    expect(found.filter((line) => line.opportunityId === opportunity.open).map((line) => line.sortOrder)).toEqual([1, 1, 2]);
    expect(await connector.opportunityLinesByOpportunityIds([opportunity.unassigned])).toEqual([]);
  });

  it('opportunities in a single-currency org (no CurrencyIsoCode field): the same records, every one in USD', async () => {
    server.faults.hideField('Opportunity', 'CurrencyIsoCode');
    const singleCurrency = salesforce().connector;
    const found = await singleCurrency.opportunitiesByIds(opportunity.ids);
    const reference = (await embedded.opportunitiesByIds(opportunity.ids)).map((record) => ({ ...record, currency: 'USD' }));
    expect(byId(found)).toEqual(byId(reference));
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /sobjects/Opportunity/describe 200',
      'GET /query 200',
    ]);
  });

  it('recordOpportunityOrder: the same opportunity as the embedded adapter, its order fields written and one completed Task on it', async () => {
    const id = opportunity.writes[0]!;
    const update = order('order-parity-1', id);
    const written = await connector.recordOpportunityOrder(update);
    expect(written).toEqual(await embedded.recordOpportunityOrder(update));
    expect(written).toMatchObject({ id, erpOrderNumber: 'SO-2001', erpOrderStatus: 'Open', expectedShipDate: '2026-11-20' });
    expect(orgOpportunity(id)).toMatchObject({
      ERP_Order_Number__c: 'SO-2001',
      ERP_Order_Status__c: 'Open',
      Expected_Ship_Date__c: '2026-11-20',
    });
    const tasks = tasksWithKey('order-parity-1');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({
      WhatId: id,
      AccountId: opportunity.accountOf[id],
      Subject: 'Order SO-2001 placed',
      Description: 'Booked from the won opportunity',
      ActivityDate: '2026-11-01',
      Status: 'Completed',
    });
  });

  it('recordOpportunityOrder: a used key changes nothing again and returns the opportunity, as the embedded adapter does', async () => {
    const id = opportunity.writes[1]!;
    const first = order('order-parity-2', id);
    const again = { ...first, orderNumber: 'SO-9999', orderStatus: 'Released', subject: 'Something else' };
    const written = await connector.recordOpportunityOrder(first);
    expect(await embedded.recordOpportunityOrder(first)).toEqual(written);
    server.requests.length = 0;
    expect(await connector.recordOpportunityOrder(again)).toEqual(written);
    expect(await embedded.recordOpportunityOrder(again)).toEqual(written);
    expect(tasksWithKey('order-parity-2')).toHaveLength(1);
    expect(orgOpportunity(id)).toMatchObject({ ERP_Order_Number__c: 'SO-2001', ERP_Order_Status__c: 'Open' });
    expect(server.requests.every((request) => request.method === 'GET')).toBe(true);
  });

  it('recordOpportunityOrder: null for an unknown, malformed or 15-character opportunity id, as in the embedded CRM, and nothing written', async () => {
    for (const id of [`006${'0'.repeat(15)}`, 'not-an-id', opportunity.open.slice(0, 15)]) {
      expect(await connector.recordOpportunityOrder(order('order-unknown', id))).toBeNull();
      expect(await embedded.recordOpportunityOrder(order('order-unknown', id))).toBeNull();
    }
    expect(tasksWithKey('order-unknown')).toHaveLength(0);
    expect(composites()).toHaveLength(0);
  });

  it('accountsByIds: the same accounts as the embedded adapter, with or without a customer number or onboarding status; unknown, malformed and 15-character ids left out', async () => {
    const known = [...accountIds, ...prospectIds, ...onboarding.ids];
    const keys = [...known, 'not-an-id', onboarding.pending.slice(0, 15), `001${'0'.repeat(15)}`];
    const found = await connector.accountsByIds(keys);
    expect(found).toHaveLength(known.length);
    expect(byId(found)).toEqual(byId(await embedded.accountsByIds(keys)));
    const account = (id: string) => found.find((record) => record.id === id);
    expect(account(onboarding.pending)).toEqual({
      id: onboarding.pending,
      customerId: null,
      name: 'Nordwind Pumpen GmbH',
      billingAddress: { street: 'Hafenstraße 12', city: 'Bremen', state: null, postalCode: '28217', country: 'Germany' },
      phone: '+49 421 555 0100',
      taxRegistrationNumber: 'DE811907980',
      billingEmail: 'rechnung@nordwind.example',
      currency: 'EUR',
      onboardingStatus: 'PENDING',
      onboardingReason: null,
    });
    // From before onboarding: no status (active), no currency (USD).
    expect(account(onboarding.legacy)).toMatchObject({
      customerId: 'C90002',
      onboardingStatus: 'ACTIVE',
      currency: 'USD',
      taxRegistrationNumber: null,
    });
    expect(account(onboarding.rejected)).toMatchObject({
      customerId: null,
      billingAddress: null,
      onboardingStatus: 'REJECTED',
      onboardingReason: 'Tax registration number not found',
    });
    expect(account(onboarding.active)).toMatchObject({ customerId: 'C90001', onboardingStatus: 'ACTIVE', currency: 'GBP' });
    expect(account(onboarding.unknownStatus)).toMatchObject({ onboardingStatus: 'PENDING' });
    server.reset();
    expect(await connector.accountsByIds(['not-an-id'])).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });

  it('accountsByIds in a single-currency org (no Account.CurrencyIsoCode): the same accounts, every one in USD', async () => {
    server.faults.hideField('Account', 'CurrencyIsoCode');
    const singleCurrency = salesforce().connector;
    const keys = [...accountIds.slice(0, 5), ...onboarding.ids];
    const found = await singleCurrency.accountsByIds(keys);
    const reference = (await embedded.accountsByIds(keys)).map((record) => ({ ...record, currency: 'USD' }));
    expect(byId(found)).toEqual(byId(reference));
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /sobjects/Account/describe 200',
      'GET /query 200',
    ]);
  });

  it('subscriptionsByIds: the same subscriptions as the embedded adapter, customer and contract numbers through Account__r and Contract__r; unknown, malformed and 15-character ids left out', async () => {
    const keys = [...subscription.ids, 'not-an-id', subscription.monthly.slice(0, 15), `a0S${'0'.repeat(15)}`, opportunity.open];
    const found = await connector.subscriptionsByIds(keys);
    expect(found).toHaveLength(subscription.ids.length);
    expect(byId(found)).toEqual(byId(await embedded.subscriptionsByIds(keys)));
    const record = (id: string) => found.find((candidate) => candidate.id === id);
    expect(record(subscription.monthly)).toEqual({
      id: subscription.monthly,
      customerId: customerNumberOf(subscription.contract.accountId),
      contractId: subscription.contract.number,
      plan: 'SVC-GOLD',
      quantity: 25,
      tier: 'PREMIUM',
      status: 'ACTIVE',
      startDate: '2026-01-01',
      endDate: '2026-12-31',
      unitPrice: '49.90',
      frequency: 'MONTHLY',
      currency: 'EUR',
    });
    expect(record(subscription.annual)).toMatchObject({ contractId: null, frequency: 'ANNUAL', status: 'DRAFT', endDate: null });
    expect(record(subscription.unassigned)).toMatchObject({ customerId: null, contractId: null, quantity: 2.5, currency: 'USD' });
    expect(record(subscription.unknownValues)).toMatchObject({ tier: 'BASIC', status: 'DRAFT', frequency: 'MONTHLY' });
    expect(new Set(found.map((candidate) => candidate.status))).toEqual(new Set(['DRAFT', 'ACTIVE', 'SUSPENDED', 'EXPIRED']));
    expect(new Set(found.map((candidate) => candidate.frequency))).toEqual(new Set(['MONTHLY', 'ANNUAL']));
    expect(firstQueries().map((request) => request.soql)).toEqual([
      expect.stringMatching(/^SELECT Id, Account__r\.AccountNumber, Contract__r\.ContractNumber, .* FROM Subscription__c WHERE Id IN/),
    ]);
    server.reset();
    expect(await connector.subscriptionsByIds(['not-an-id'])).toEqual([]);
    expect(await connector.subscriptionsByIds([])).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });

  it('subscriptionsByIds in a single-currency org (no Subscription__c.CurrencyIsoCode): the same subscriptions, every one in USD', async () => {
    server.faults.hideField('Subscription__c', 'CurrencyIsoCode');
    const singleCurrency = salesforce().connector;
    const found = await singleCurrency.subscriptionsByIds(subscription.ids);
    const reference = (await embedded.subscriptionsByIds(subscription.ids)).map((record) => ({ ...record, currency: 'USD' }));
    expect(found).toHaveLength(subscription.ids.length);
    expect(byId(found)).toEqual(byId(reference));
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /sobjects/Subscription__c/describe 200',
      'GET /query 200',
    ]);
  });

  it('recordAccountOnboarding: the same account as the embedded adapter, status, reason and customer number written and one completed Task on it', async () => {
    const id = onboarding.writes[0]!;
    const update = onboard('onboard-parity-1', id);
    const written = await connector.recordAccountOnboarding(update);
    expect(written).toEqual(await embedded.recordAccountOnboarding(update));
    expect(written).toMatchObject({
      id,
      customerId: 'C80001',
      onboardingStatus: 'ACTIVE',
      onboardingReason: 'Validated against the tax register',
    });
    expect(orgAccount(id)).toMatchObject({
      AccountNumber: 'C80001',
      Onboarding_Status__c: 'Active',
      Onboarding_Reason__c: 'Validated against the tax register',
    });
    const tasks = tasksWithKey('onboard-parity-1');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({
      WhatId: id,
      AccountId: id,
      Subject: 'Customer C80001 created in the ERP',
      Description: 'Onboarded from the CRM account',
      ActivityDate: '2026-11-01',
      Status: 'Completed',
    });
  });

  it('recordAccountOnboarding: a used key changes nothing again and returns the account, as the embedded adapter does', async () => {
    const id = onboarding.writes[1]!;
    const first = onboard('onboard-parity-2', id, { customerNumber: 'C80002' });
    const again = { ...first, status: 'REJECTED' as const, customerNumber: 'C80012', reason: 'Something else' };
    const written = await connector.recordAccountOnboarding(first);
    expect(await embedded.recordAccountOnboarding(first)).toEqual(written);
    server.requests.length = 0;
    expect(await connector.recordAccountOnboarding(again)).toEqual(written);
    expect(await embedded.recordAccountOnboarding(again)).toEqual(written);
    expect(tasksWithKey('onboard-parity-2')).toHaveLength(1);
    expect(orgAccount(id)).toMatchObject({ AccountNumber: 'C80002', Onboarding_Status__c: 'Active' });
    expect(server.requests.every((request) => request.method === 'GET')).toBe(true);
  });

  it('recordAccountOnboarding without a customer number (a rejection, or an account that has one): AccountNumber left as it is, as in the embedded CRM', async () => {
    const rejection = onboard('onboard-parity-3', onboarding.writes[2]!, {
      status: 'REJECTED',
      customerNumber: null,
      reason: 'Tax registration number not found',
    });
    const rejected = await connector.recordAccountOnboarding(rejection);
    expect(rejected).toEqual(await embedded.recordAccountOnboarding(rejection));
    expect(rejected).toMatchObject({
      customerId: null,
      onboardingStatus: 'REJECTED',
      onboardingReason: 'Tax registration number not found',
    });

    const legacy = accountIds[5]!;
    const confirmation = onboard('onboard-parity-4', legacy, { customerNumber: null, reason: null });
    const confirmed = await connector.recordAccountOnboarding(confirmation);
    expect(confirmed).toEqual(await embedded.recordAccountOnboarding(confirmation));
    expect(confirmed).toMatchObject({ customerId: customerNumberOf(legacy), onboardingStatus: 'ACTIVE', onboardingReason: null });
    expect(orgAccount(legacy)).toMatchObject({ AccountNumber: customerNumberOf(legacy), Onboarding_Status__c: 'Active' });
  });

  it('recordAccountOnboarding: null for an unknown, malformed or 15-character account id, as in the embedded CRM, and nothing written', async () => {
    for (const id of [`001${'0'.repeat(15)}`, 'not-an-id', onboarding.pending.slice(0, 15)]) {
      expect(await connector.recordAccountOnboarding(onboard('onboard-unknown', id))).toBeNull();
      expect(await embedded.recordAccountOnboarding(onboard('onboard-unknown', id))).toBeNull();
    }
    expect(tasksWithKey('onboard-unknown')).toHaveLength(0);
    expect(composites()).toHaveLength(0);
  });

  it('ping: one GET /limits', async () => {
    await expect(connector.ping()).resolves.toBeUndefined();
    await expect(embedded.ping()).resolves.toBeUndefined();
    expect(server.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['GET /limits']);
  });
});

describe('Salesforce adapter: requests', () => {
  it('chunks IN lists so each WHERE clause stays within 4,000 characters: 10 ids one query, 500 ids two', async () => {
    const { connector, counted } = salesforce();
    await connector.customersByIds(customerIds.slice(0, 10));
    expect(firstQueries()).toHaveLength(1);

    server.reset();
    const many = [...customerIds, ...Array.from({ length: 460 }, (_, i) => `C${20_000 + i}`)];
    const found = await connector.customersByIds(many);
    expect(byId(found)).toEqual(byId(await embedded.customersByIds(customerIds)));
    const queries = firstQueries();
    expect(queries).toHaveLength(2);
    expect(server.requests).toHaveLength(2);
    expect(await counted()).toBe(3);
    const lists = queries.map(inList);
    expect(lists.every(({ whereChars }) => whereChars <= 4_000)).toBe(true);
    expect(lists.flatMap(({ values }) => values).sort()).toEqual([...many].sort());
  });

  it('fits fewer 18-character Ids per statement: 500 contact Ids take three queries', async () => {
    const { connector } = salesforce();
    const made = Array.from({ length: 500 - contactIds.length }, (_, i) => `003${String(i).padStart(12, '0')}AAA`);
    const found = await connector.contactsByIds([...contactIds, ...made]);
    expect(found).toHaveLength(contactIds.length);
    expect(firstQueries()).toHaveLength(3);
    expect(firstQueries().every((request) => inList(request).whereChars <= 4_000)).toBe(true);
  });

  it('follows nextRecordsUrl with queryMore until done: 138 contacts in pages of 25 are six requests', async () => {
    const { connector, counted } = salesforce();
    server.pageSize = 25;
    const found = await connector.contactsByCustomerIds(customerIds);
    expect(found).toEqual(await embedded.contactsByCustomerIds(customerIds));
    expect(found).toHaveLength(138);
    expect(firstQueries()).toHaveLength(1);
    expect(morePages()).toHaveLength(5);
    expect(await counted()).toBe(6);

    server.reset();
    await connector.contactsByCustomerIds(customerIds);
    expect(server.requests).toHaveLength(1);
  });

  it('reads Sforce-Limit-Info: apiUsage() is null before the first answer, then the org’s count', async () => {
    const { connector } = salesforce();
    expect(connector.apiUsage()).toBeNull();
    await connector.customersByIds(customerIds.slice(0, 3));
    expect(connector.apiUsage()).toEqual({ used: server.apiUsage.used, limit: 100_000 });
    const before = server.apiUsage.used;
    await connector.ping();
    expect(connector.apiUsage()).toEqual({ used: before + 1, limit: 100_000 });
  });

  it('logActivity twice with one key creates one Task; the second call is a single query', async () => {
    const { connector } = salesforce();
    const first = await connector.logActivity(activity('once-1'));
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /query 200',
      'GET /query 200',
      'POST /sobjects/Task 201',
    ]);
    server.requests.length = 0;
    expect(await connector.logActivity(activity('once-1'))).toEqual(first);
    expect(server.requests).toHaveLength(1);
    expect(server.records('Task').filter((task) => task.Concord_Key__c === 'once-1')).toHaveLength(1);
  });

  it('logActivity racing itself with one key: one Task, the loser reads the winner after DUPLICATE_VALUE', async () => {
    const { connector } = salesforce();
    const [a, b] = await Promise.all([connector.logActivity(activity('race-1')), connector.logActivity(activity('race-1'))]);
    expect(a).toEqual(b);
    expect(server.records('Task').filter((task) => task.Concord_Key__c === 'race-1')).toHaveLength(1);
    expect(
      server.requests
        .filter((request) => request.path === '/sobjects/Task')
        .map((request) => request.status)
        .sort(),
    ).toEqual([201, 400]);
  });

  it('recordOpportunityOrder: two reads, then one Composite request; a used key costs the two reads only', async () => {
    const { connector, counted } = salesforce();
    const update = order('order-once-1', opportunity.writes[2]!);
    await connector.recordOpportunityOrder(update);
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /sobjects/Opportunity/describe 200',
      'GET /query 200',
      'GET /query 200',
      'POST /composite 200',
    ]);
    expect(await counted()).toBe(4);
    server.requests.length = 0;
    await connector.recordOpportunityOrder(update);
    expect(server.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['GET /query', 'GET /query']);
    expect(tasksWithKey('order-once-1')).toHaveLength(1);
  });

  it('recordOpportunityOrder racing itself with one key: one Task, and the loser’s update rolled back with its Task', async () => {
    const { connector } = salesforce();
    const id = opportunity.writes[3]!;
    const update = order('order-race-1', id);
    const [a, b] = await Promise.all([
      connector.recordOpportunityOrder(update),
      connector.recordOpportunityOrder({ ...update, orderNumber: 'SO-2002' }),
    ]);
    expect(composites()).toHaveLength(2);
    expect(a).toEqual(b);
    expect(tasksWithKey('order-race-1')).toHaveLength(1);
    expect(orgOpportunity(id)?.ERP_Order_Number__c).toBe(a?.erpOrderNumber);
  });

  it('subscriptionsByIds: one describe of Subscription__c on first use, then one query a call; a failed describe is asked again', async () => {
    const { connector, counted } = salesforce();
    server.faults.failNext('malformedQuery');
    await expect(connector.subscriptionsByIds(subscription.ids)).rejects.toBeInstanceOf(SalesforceError);
    await connector.subscriptionsByIds(subscription.ids.slice(0, 2));
    await connector.subscriptionsByIds(subscription.ids.slice(2));
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /sobjects/Subscription__c/describe 400',
      'GET /sobjects/Subscription__c/describe 200',
      'GET /query 200',
      'GET /query 200',
    ]);
    expect(await counted()).toBe(4);
  });

  it('recordAccountOnboarding: a describe and two reads, then one Composite request; a used key costs the two reads only', async () => {
    const { connector, counted } = salesforce();
    const id = onboarding.writes[3]!;
    const update = onboard('onboard-once-1', id, { customerNumber: 'C80003' });
    await connector.recordAccountOnboarding(update);
    expect(server.requests.map((request) => `${request.method} ${request.path} ${request.status}`)).toEqual([
      'GET /sobjects/Account/describe 200',
      'GET /query 200',
      'GET /query 200',
      'POST /composite 200',
    ]);
    expect(await counted()).toBe(4);
    server.requests.length = 0;
    expect(await connector.recordAccountOnboarding({ ...update, status: 'REJECTED', customerNumber: null })).toMatchObject({
      customerId: 'C80003',
      onboardingStatus: 'ACTIVE',
    });
    expect(server.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['GET /query', 'GET /query']);
    expect(tasksWithKey('onboard-once-1')).toHaveLength(1);
  });

  it('recordAccountOnboarding racing itself with one key: one Task, and the loser’s update rolled back with its Task', async () => {
    const { connector } = salesforce();
    const id = onboarding.writes[4]!;
    const update = onboard('onboard-race-1', id, { customerNumber: 'C80004' });
    const [a, b] = await Promise.all([
      connector.recordAccountOnboarding(update),
      connector.recordAccountOnboarding({ ...update, customerNumber: 'C80014' }),
    ]);
    expect(composites()).toHaveLength(2);
    expect(a).toEqual(b);
    expect(tasksWithKey('onboard-race-1')).toHaveLength(1);
    expect(orgAccount(id)?.AccountNumber).toBe(a?.customerId);
  });
});

describe('Salesforce adapter: failures', () => {
  it('retries 503 through the resilience layer only: two 503s then success is three requests, all counted', async () => {
    const { connector, counted } = salesforce();
    server.faults.failNext('unavailable', 2);
    await expect(connector.customersByIds(customerIds.slice(0, 2))).resolves.toHaveLength(2);
    // jsforce would retry each 503 itself (up to 5 times, 0.5 s apart): exactly three means it did not.
    expect(statuses()).toEqual([503, 503, 200]);
    expect(await counted()).toBe(3);
  });

  it('retries REQUEST_LIMIT_EXCEEDED (403)', async () => {
    const { connector } = salesforce();
    server.faults.failNext('requestLimit');
    await expect(connector.contractsByIds(contractNumbers.slice(0, 2))).resolves.toHaveLength(2);
    expect(statuses()).toEqual([403, 200]);
  });

  it('gives up after the policy’s tries with a ConnectorError naming the system', async () => {
    const { connector } = salesforce();
    server.faults.failNext('unavailable', 10);
    const failure = await connector.customersByIds(customerIds.slice(0, 2)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConnectorError);
    expect((failure as ConnectorError).system).toBe('crm');
    expect(server.requests).toHaveLength(DEFAULT_POLICY.retries + 1);
  });

  it('gives a slow org the resilience deadline: each try times out, then the call fails', async () => {
    const { connector } = salesforce({}, { timeoutMs: 50, retries: 1 });
    server.faults.latencyMs = 200;
    await expect(connector.customersByIds(customerIds.slice(0, 2))).rejects.toThrow(/timed out after 50 ms/);
    expect(server.requests).toHaveLength(2);
  });

  it('retries a reset connection, once, counting both requests', async () => {
    const { connector, counted } = salesforce();
    server.faults.failNext('reset');
    await expect(connector.contactsByIds(contactIds.slice(0, 2))).resolves.toHaveLength(2);
    expect(statuses()).toEqual([0, 200]);
    expect(await counted()).toBe(2);
  });

  it('does not retry MALFORMED_QUERY or INVALID_FIELD: one request, a non-retryable SalesforceError', async () => {
    const { connector } = salesforce();
    server.faults.failNext('malformedQuery');
    const malformed = await connector.customersByIds(customerIds.slice(0, 2)).catch((error: unknown) => error);
    expect(malformed).toBeInstanceOf(SalesforceError);
    expect(malformed).toMatchObject({ errorCode: 'MALFORMED_QUERY', details: { retryable: false } });
    expect(server.requests).toHaveLength(1);

    server.reset();
    server.faults.hideField('Account', 'Segment__c');
    const invalid = await connector.customersByIds(customerIds.slice(0, 2)).catch((error: unknown) => error);
    expect(invalid).toMatchObject({ errorCode: 'INVALID_FIELD', details: { retryable: false } });
    expect((invalid as Error).message).toContain("No such column 'Segment__c' on entity 'Account'");
    expect(server.requests).toHaveLength(1);
  });

  it('renews an expired session once and the call succeeds; later calls use the new token', async () => {
    let refreshes = 0;
    const { connector } = salesforce({ refresh: async () => ((refreshes += 1), 'renewed-token') });
    server.accessToken = 'renewed-token';
    await expect(connector.customersByIds(customerIds.slice(0, 2))).resolves.toHaveLength(2);
    expect(refreshes).toBe(1);
    expect(server.requests.map((request) => [request.status, request.token])).toEqual([
      [401, 'concord-test-session'],
      [200, 'renewed-token'],
    ]);
    await connector.ping();
    expect(server.requests).toHaveLength(3);
    expect(refreshes).toBe(1);
  });

  it('shares one renewal between concurrent calls rejected with the same token', async () => {
    let refreshes = 0;
    const { connector } = salesforce({ refresh: async () => ((refreshes += 1), 'renewed-token') });
    server.accessToken = 'renewed-token';
    await Promise.all([
      connector.customersByIds(customerIds.slice(0, 2)),
      connector.contactsByIds(contactIds.slice(0, 2)),
      connector.contractsByIds(contractNumbers.slice(0, 2)),
    ]);
    expect(refreshes).toBe(1);
  });

  it('fails after one renewal when the org keeps answering 401 (no refresh loop), and at once without a refresh', async () => {
    let refreshes = 0;
    const { connector } = salesforce({ refresh: async () => ((refreshes += 1), `renewed-${refreshes}`) });
    server.faults.rejectEveryToken = true;
    const failure = await connector.customersByIds(customerIds.slice(0, 2)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConnectorError);
    expect(refreshes).toBe(1);
    expect(statuses()).toEqual([401, 401]);

    server.reset();
    server.faults.rejectEveryToken = true;
    await expect(salesforce().connector.ping()).rejects.toThrow(/no refresh is configured/);
    expect(statuses()).toEqual([401]);
  });

  it('counts every HTTP request once in concord_connector_calls_total, retries and renewals included', async () => {
    const { connector, counted } = salesforce({ refresh: async () => 'renewed-token' });
    server.pageSize = 50;
    server.faults.failNext('unavailable');
    server.accessToken = 'renewed-token';
    await connector.contactsByCustomerIds(customerIds);
    await connector.logActivity(activity('counted-1'));
    await connector.ping();
    expect(server.requests.length).toBeGreaterThan(6);
    expect(await counted()).toBe(server.requests.length);
  });

  it('a validation rule refusing the opportunity update: a CrmRefusal with its code and message, nothing written, not retried', async () => {
    const { connector } = salesforce();
    server.faults.addValidationRule('Opportunity', {
      message: 'A lost opportunity takes no order',
      field: 'ERP_Order_Number__c',
      when: (record) => record.IsClosed === true && record.IsWon === false,
    });
    const update = order('order-refused-1', opportunity.lost);
    const refusal = await connector.recordOpportunityOrder(update).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(CrmRefusal);
    expect(refusal).toMatchObject({ code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'A lost opportunity takes no order' });
    expect(composites()).toHaveLength(1);
    expect(tasksWithKey('order-refused-1')).toHaveLength(0);
    expect(orgOpportunity(opportunity.lost)).toMatchObject({ ERP_Order_Number__c: null, ERP_Order_Status__c: null });

    // The refused call used nothing up: without the rule, the same key records the order.
    server.reset();
    expect(await connector.recordOpportunityOrder(update)).toMatchObject({ erpOrderNumber: 'SO-2001', isClosed: true });
    expect(tasksWithKey('order-refused-1')).toHaveLength(1);
  });

  it('recordOpportunityOrder retries a 503 on the Composite request: the order written once, one Task', async () => {
    const { connector, counted } = salesforce();
    server.faults.failNext('unavailable', 2, '/composite');
    const id = opportunity.writes[4]!;
    expect(await connector.recordOpportunityOrder(order('order-503-1', id))).toMatchObject({ id, erpOrderNumber: 'SO-2001' });
    expect(composites().map((request) => request.status)).toEqual([503, 503, 200]);
    expect(tasksWithKey('order-503-1')).toHaveLength(1);
    expect(await counted()).toBe(server.requests.length);
  });

  it('recordOpportunityOrder with Salesforce down through every try: a ConnectorError naming the crm, nothing written', async () => {
    const { connector } = salesforce();
    server.faults.failNext('unavailable', 10, '/composite');
    const id = opportunity.writes[5]!;
    const failure = await connector.recordOpportunityOrder(order('order-503-2', id)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConnectorError);
    expect((failure as ConnectorError).system).toBe('crm');
    expect(composites()).toHaveLength(DEFAULT_POLICY.retries + 1);
    expect(tasksWithKey('order-503-2')).toHaveLength(0);
    expect(orgOpportunity(id)).toMatchObject({ ERP_Order_Number__c: null });
  });

  it('a validation rule refusing the onboarding: a CrmRefusal with its code and message, nothing written, not retried', async () => {
    const { connector } = salesforce();
    server.faults.addValidationRule('Account', {
      message: 'A customer number needs a tax registration number',
      field: 'AccountNumber',
      when: (record) => record.AccountNumber !== null && record.Tax_Registration_Number__c === null,
    });
    const id = onboarding.untaxed;
    const update = onboard('onboard-refused-1', id, { customerNumber: 'C80005' });
    const refusal = await connector.recordAccountOnboarding(update).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(CrmRefusal);
    expect(refusal).toMatchObject({
      code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
      message: 'A customer number needs a tax registration number',
    });
    expect(composites()).toHaveLength(1);
    expect(tasksWithKey('onboard-refused-1')).toHaveLength(0);
    expect(orgAccount(id)).toMatchObject({ AccountNumber: null, Onboarding_Status__c: 'Pending', Onboarding_Reason__c: null });

    // The refused call used nothing up: without the rule, the same key records the onboarding.
    server.reset();
    expect(await connector.recordAccountOnboarding(update)).toMatchObject({ customerId: 'C80005', onboardingStatus: 'ACTIVE' });
    expect(tasksWithKey('onboard-refused-1')).toHaveLength(1);
  });

  it('a customer number another account already holds: a CrmRefusal with DUPLICATE_VALUE, nothing written', async () => {
    const { connector } = salesforce();
    const id = onboarding.writes[5]!;
    const refusal = await connector
      .recordAccountOnboarding(onboard('onboard-duplicate-1', id, { customerNumber: customerIds[0]! }))
      .catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(CrmRefusal);
    expect(refusal).toMatchObject({ code: 'DUPLICATE_VALUE' });
    expect((refusal as Error).message).toContain('AccountNumber');
    expect(composites()).toHaveLength(1);
    expect(tasksWithKey('onboard-duplicate-1')).toHaveLength(0);
    expect(orgAccount(id)).toMatchObject({ AccountNumber: null, Onboarding_Status__c: 'Pending' });
  });

  it('recordAccountOnboarding retries a 503 on the Composite request: the account written once, one Task', async () => {
    const { connector, counted } = salesforce();
    server.faults.failNext('unavailable', 2, '/composite');
    const id = onboarding.writes[6]!;
    expect(await connector.recordAccountOnboarding(onboard('onboard-503-1', id, { customerNumber: 'C80006' }))).toMatchObject({
      id,
      customerId: 'C80006',
      onboardingStatus: 'ACTIVE',
    });
    expect(composites().map((request) => request.status)).toEqual([503, 503, 200]);
    expect(tasksWithKey('onboard-503-1')).toHaveLength(1);
    expect(orgAccount(id)).toMatchObject({ AccountNumber: 'C80006', Onboarding_Status__c: 'Active' });
    expect(await counted()).toBe(server.requests.length);
  });
});

describe('the Salesforce stand-in answers as Salesforce does', () => {
  const conn = () => new Connection({ instanceUrl: server.instanceUrl, accessToken: server.accessToken, version: '59.0' });

  it('rejects a wrong token with 401 INVALID_SESSION_ID as a JSON array, with Sforce-Limit-Info', async () => {
    const response = await fetch(`${server.instanceUrl}/services/data/v59.0/limits`, { headers: { authorization: 'Bearer wrong' } });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/json;charset=UTF-8');
    expect(response.headers.get('sforce-limit-info')).toMatch(/^api-usage=\d+\/100000$/);
    expect(await response.json()).toEqual([{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
  });

  it('answers 414 for a URI over 16,384 bytes, and 404 under a version it does not serve', async () => {
    const long = await fetch(`${server.instanceUrl}/services/data/v59.0/query?q=${'x'.repeat(16_400)}`, {
      headers: { authorization: `Bearer ${server.accessToken}` },
    });
    expect(long.status).toBe(414);
    const old = new Connection({ instanceUrl: server.instanceUrl, accessToken: server.accessToken });
    await expect(old.query('SELECT Id FROM Account')).rejects.toMatchObject({ errorCode: 'NOT_FOUND' });
  });

  it('runs SOQL with relationship fields, ORDER BY and LIMIT, and rejects a malformed Id filter', async () => {
    const result = await conn().query<{ Name: string; Owner: { Name: string } }>(
      'SELECT Name, Owner.Name FROM Account ORDER BY Name DESC LIMIT 3',
    );
    const expected = dbs.crm
      .prepare('SELECT a.Name, u.Name AS Owner FROM Account a JOIN "User" u ON u.Id = a.OwnerId ORDER BY upper(a.Name) DESC LIMIT 3')
      .all() as { Name: string; Owner: string }[];
    expect(result.records.map((record) => [record.Name, record.Owner.Name])).toEqual(expected.map((row) => [row.Name, row.Owner]));
    expect(result).toMatchObject({ totalSize: 3, done: true });
    await expect(conn().query("SELECT Id FROM Contact WHERE Id IN ('nope')")).rejects.toMatchObject({
      errorCode: 'INVALID_QUERY_FILTER_OPERATOR',
    });
    await expect(conn().query('SELECT Id FROM Contact WHERE')).rejects.toMatchObject({ errorCode: 'MALFORMED_QUERY' });
  });

  it('retrieves many by Id (null for a missing one) and upserts by external id (201 created, then 200 updated)', async () => {
    const records = (await conn().retrieve('Contact', [contactIds[0]!, `003${'0'.repeat(15)}`], {
      fields: ['Id', 'LastName'],
    })) as unknown[];
    expect(records).toEqual([
      expect.objectContaining({ Id: contactIds[0], attributes: expect.objectContaining({ type: 'Contact' }) }),
      null,
    ]);
    expect(server.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['POST /composite/sobjects/Contact']);

    const task = { Concord_Key__c: 'upsert-1', WhatId: accountIds[0]!, Subject: 'Call' };
    const created = await conn().upsert('Task', task, 'Concord_Key__c');
    const updated = await conn().upsert('Task', { ...task, Subject: 'Call back' }, 'Concord_Key__c');
    expect(created).toMatchObject({ success: true, created: true });
    expect(updated).toMatchObject({ id: (created as { id: string }).id, success: true, created: false });
    expect(statuses().slice(-2)).toEqual([201, 200]);
  });

  it('runs a Composite request all or none: a failing subrequest rolls back the others, which answer 400 PROCESSING_HALTED', async () => {
    const base = '/services/data/v59.0';
    const composite = async (allOrNone: boolean) => {
      const response = await fetch(`${server.instanceUrl}${base}/composite`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          allOrNone,
          compositeRequest: [
            {
              method: 'PATCH',
              url: `${base}/sobjects/Task/Concord_Key__c/composite-1`,
              referenceId: 'task',
              body: { WhatId: opportunity.open, Subject: 'Call' },
            },
            {
              method: 'GET',
              url: `${base}/query?q=${encodeURIComponent("SELECT Id, Account.AccountNumber FROM Task WHERE Id = '")}@{task.id}'`,
              referenceId: 'read',
            },
            { method: 'PATCH', url: `${base}/sobjects/Opportunity/${opportunity.open}`, referenceId: 'bad', body: { NoSuch__c: 'x' } },
          ],
        }),
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { compositeResponse: { body: unknown; httpStatusCode: number; referenceId: string }[] })
        .compositeResponse;
    };
    const errorCode = (body: unknown) => (body as { errorCode: string }[])[0]?.errorCode;

    const atomic = await composite(true);
    expect(atomic.map((result) => [result.referenceId, result.httpStatusCode, errorCode(result.body)])).toEqual([
      ['task', 400, 'PROCESSING_HALTED'],
      ['read', 400, 'PROCESSING_HALTED'],
      ['bad', 400, 'INVALID_FIELD'],
    ]);
    expect(tasksWithKey('composite-1')).toHaveLength(0);

    const partial = await composite(false);
    expect(partial.map((result) => result.httpStatusCode)).toEqual([201, 200, 400]);
    // Upserted by external id; its AccountId is the opportunity's account's.
    expect((partial[1]!.body as { records: { Account: { AccountNumber: string } }[] }).records).toEqual([
      expect.objectContaining({
        Account: expect.objectContaining({ AccountNumber: customerNumberOf(opportunity.accountOf[opportunity.open]!) }),
      }),
    ]);
    expect(tasksWithKey('composite-1')).toHaveLength(1);
    expect(server.requests).toHaveLength(2);
  });

  it('describes an sObject with the fields the org has: no CurrencyIsoCode in a single-currency org', async () => {
    const fields = async () => (await conn().sobject('Opportunity').describe()).fields.map((field) => field.name);
    expect(await fields()).toEqual(expect.arrayContaining(['Id', 'CurrencyIsoCode', 'ERP_Order_Number__c', 'Expected_Ship_Date__c']));
    server.faults.hideField('Opportunity', 'CurrencyIsoCode');
    expect(await fields()).not.toContain('CurrencyIsoCode');
  });

  it('describes the custom object Subscription__c with its lookups, which SOQL follows through their __r relationships only', async () => {
    const fields = (await conn().sobject('Subscription__c').describe()).fields;
    expect(fields.find((field) => field.name === 'Account__c')).toMatchObject({ relationshipName: 'Account__r', referenceTo: ['Account'] });
    expect(fields.find((field) => field.name === 'Contract__c')).toMatchObject({
      relationshipName: 'Contract__r',
      referenceTo: ['Contract'],
    });
    const result = await conn().query<{ Id: string; Account__r: { AccountNumber: string }; Contract__r: null }>(
      `SELECT Id, Account__r.AccountNumber, Contract__r.ContractNumber FROM Subscription__c WHERE Id = '${subscription.annual}'`,
    );
    expect(result.records).toEqual([
      expect.objectContaining({
        Id: subscription.annual,
        Account__r: expect.objectContaining({ AccountNumber: customerNumberOf(accountIds[1]!) }),
        Contract__r: null,
      }),
    ]);
    await expect(conn().query('SELECT Id, Account.AccountNumber FROM Subscription__c')).rejects.toMatchObject({
      errorCode: 'INVALID_FIELD',
    });
  });

  it('describes Account with the onboarding fields, AccountNumber unique: a number another account holds is DUPLICATE_VALUE', async () => {
    const fields = (await conn().sobject('Account').describe()).fields;
    expect(fields.map((field) => field.name)).toEqual(
      expect.arrayContaining([
        'Tax_Registration_Number__c',
        'Billing_Email__c',
        'CurrencyIsoCode',
        'Onboarding_Status__c',
        'Onboarding_Reason__c',
      ]),
    );
    expect(fields.find((field) => field.name === 'AccountNumber')).toMatchObject({ unique: true, externalId: false });
    const response = await fetch(`${server.instanceUrl}/services/data/v59.0/sobjects/Account/${onboarding.pending}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${server.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ AccountNumber: customerIds[1]!.toLowerCase() }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual([expect.objectContaining({ errorCode: 'DUPLICATE_VALUE' })]);
    expect(orgAccount(onboarding.pending)).toMatchObject({ AccountNumber: null });
  });
});

function customerNumberOf(accountId: string): string {
  return (dbs.crm.prepare('SELECT AccountNumber FROM Account WHERE Id = ?').get(accountId) as { AccountNumber: string }).AccountNumber;
}

/**
 * Opportunities with products in the embedded CRM (the seed has none), added before the stand-in
 * copies it: an open one in EUR whose lines have a SortOrder tie, a won one already ordered, one
 * without an account or amount, a lost one, and open ones for the writes to change.
 */
function addOpportunities() {
  const insert = dbs.crm.prepare(
    `INSERT INTO Opportunity (Id, AccountId, Name, StageName, IsClosed, IsWon, CloseDate, Amount, CurrencyIsoCode,
       ERP_Order_Number__c, ERP_Order_Status__c, Expected_Ship_Date__c, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-10-01T09:00:00.000Z')`,
  );
  const insertLine = dbs.crm.prepare(
    `INSERT INTO OpportunityLineItem (Id, OpportunityId, ProductCode, Name, Quantity, UnitPrice, TotalPrice, SortOrder)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const accountOf: Record<string, string | null> = {};
  let lines = 0;
  const add = (
    accountId: string | null,
    name: string,
    stage: [string, number, number],
    amount: number | null,
    currency: string,
    ordered: [string, string, string] | null,
    products: [string, number, number, number][],
  ) => {
    const id = newSalesforceId('006');
    accountOf[id] = accountId;
    const [number, status, ship] = ordered ?? [null, null, null];
    insert.run(id, accountId, name, ...stage, '2026-11-30', amount, currency, number, status, ship);
    for (const [sku, quantity, unitPrice, sortOrder] of products) {
      insertLine.run(newSalesforceId('00k'), id, sku, `${name} ${sku}`, quantity, unitPrice, quantity * unitPrice, sortOrder);
      lines += 1;
    }
    return id;
  };
  const open = add(accountIds[0]!, 'Pump retrofit', ['Negotiation/Review', 0, 0], 12_500.5, 'EUR', null, [
    ['PMP-4410', 2, 4_800, 2],
    ['SEAL-KIT-20', 10, 89.9, 1],
    ['VLV-0090', 4, 225.05, 1],
  ]);
  const won = add(
    accountIds[1]!,
    'Spare parts 2026',
    ['Closed Won', 1, 1],
    9_800,
    'USD',
    ['SO-1001', 'Open', '2026-10-20'],
    [
      ['FLT-3300', 20, 140, 0],
      ['PMP-4410', 1, 7_000, 0],
    ],
  );
  const unassigned = add(null, 'Inbound lead', ['Prospecting', 0, 0], null, 'USD', null, []);
  const lost = add(accountIds[2]!, 'Tender 2026', ['Closed Lost', 1, 0], 54_000, 'USD', null, [['MTR-7750', 3, 18_000, 1]]);
  const writes = [3, 4, 5, 6, 7, 8].map((i) =>
    add(accountIds[i]!, `Service contract ${i}`, ['Proposal/Price Quote', 0, 0], 1_000 * i, 'USD', null, [['SVC-100', 1, 1_000 * i, 1]]),
  );
  return { open, won, unassigned, lost, writes, ids: [open, won, unassigned, lost, ...writes], accountOf, lines };
}

function accountIdOf(customerId: string): string {
  return (dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber = ?').get(customerId) as { Id: string }).Id;
}

/**
 * Accounts in onboarding, added before the stand-in copies the CRM: a pending one in EUR without
 * a customer number, a rejected one without an address or currency, an onboarded one in GBP, one
 * from before onboarding (no status, no currency), one with a status the adapters do not know,
 * and pending ones for the writes to change (one without a tax number).
 */
function addOnboardingAccounts() {
  const owner = column('SELECT Id FROM "User" ORDER BY Id')[0]!;
  const insert = dbs.crm.prepare(
    `INSERT INTO Account (Id, Name, AccountNumber, OwnerId, BillingStreet, BillingCity, BillingState, BillingPostalCode, BillingCountry,
       Phone, Tax_Registration_Number__c, Billing_Email__c, CurrencyIsoCode, Onboarding_Status__c, Onboarding_Reason__c, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-10-01T09:00:00.000Z')`,
  );
  const add = (
    name: string,
    accountNumber: string | null,
    address: [string, string, string | null, string, string] | null,
    phone: string | null,
    taxNumber: string | null,
    billingEmail: string | null,
    currency: string | null,
    status: string | null,
    reason: string | null = null,
  ) => {
    const id = newSalesforceId('001');
    insert.run(
      id,
      name,
      accountNumber,
      owner,
      ...(address ?? [null, null, null, null, null]),
      phone,
      taxNumber,
      billingEmail,
      currency,
      status,
      reason,
    );
    return id;
  };
  const pending = add(
    'Nordwind Pumpen GmbH',
    null,
    ['Hafenstraße 12', 'Bremen', null, '28217', 'Germany'],
    '+49 421 555 0100',
    'DE811907980',
    'rechnung@nordwind.example',
    'EUR',
    'Pending',
  );
  const rejected = add('Harbor Fluid Systems', null, null, null, '99-0000000', null, null, 'Rejected', 'Tax registration number not found');
  const active = add(
    'Ridgeline Controls Ltd',
    'C90001',
    ['4 Mill Lane', 'Leeds', null, 'LS1 4AB', 'United Kingdom'],
    null,
    'GB123456789',
    'ap@ridgeline.example',
    'GBP',
    'Active',
  );
  const legacy = add('Old Mill Supply Co', 'C90002', null, '+1 555 0100', null, null, null, null);
  const unknownStatus = add('Keystone Valves', null, null, null, '12-3456789', null, 'USD', 'On Hold');
  const writes = [1, 2, 3, 4, 5, 6, 7].map((i) =>
    add(
      `Onboarding candidate ${i}`,
      null,
      ['1 Main St', 'Austin', 'TX', '78701', 'United States'],
      null,
      `75-00000${i}`,
      `ap${i}@candidate.example`,
      'USD',
      'Pending',
    ),
  );
  const untaxed = add('Onboarding candidate without tax number', null, null, null, null, null, 'USD', 'Pending');
  return {
    pending,
    rejected,
    active,
    legacy,
    unknownStatus,
    writes,
    untaxed,
    ids: [pending, rejected, active, legacy, unknownStatus, ...writes, untaxed],
  };
}

/**
 * Subscriptions in the embedded CRM (the seed has none), added before the stand-in copies it: an
 * active monthly one on a contract in EUR, an annual draft without a contract, a suspended one
 * without an account or currency and with a fractional quantity, an expired one, and one whose
 * picklist values the adapters do not know.
 */
function addSubscriptions() {
  const contract = dbs.crm
    .prepare('SELECT Id AS id, ContractNumber AS number, AccountId AS accountId FROM Contract ORDER BY ContractNumber')
    .get() as {
    id: string;
    number: string;
    accountId: string;
  };
  const insert = dbs.crm.prepare(
    `INSERT INTO Subscription__c (Id, Account__c, Contract__c, Plan_Code__c, Quantity__c, Support_Tier__c, Status__c, Start_Date__c,
       End_Date__c, Unit_Price__c, Billing_Frequency__c, CurrencyIsoCode, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-10-01T09:00:00.000Z')`,
  );
  const add = (
    accountId: string | null,
    contractId: string | null,
    plan: string,
    quantity: number,
    [tier, status, frequency]: [string, string, string],
    [start, end]: [string | null, string | null],
    unitPrice: number,
    currency: string | null,
  ) => {
    const id = newSalesforceId('a0S');
    insert.run(id, accountId, contractId, plan, quantity, tier, status, start, end, unitPrice, frequency, currency);
    return id;
  };
  const monthly = add(
    contract.accountId,
    contract.id,
    'SVC-GOLD',
    25,
    ['Premium', 'Active', 'Monthly'],
    ['2026-01-01', '2026-12-31'],
    49.9,
    'EUR',
  );
  const annual = add(accountIds[1]!, null, 'SVC-SILVER', 10, ['Standard', 'Draft', 'Annual'], ['2027-01-01', null], 1_200, 'USD');
  const unassigned = add(null, null, 'SVC-BASIC', 2.5, ['Basic', 'Suspended', 'Monthly'], [null, null], 19.99, null);
  const expired = add(
    contract.accountId,
    contract.id,
    'SVC-GOLD',
    5,
    ['Premium', 'Expired', 'Annual'],
    ['2024-01-01', '2024-12-31'],
    540,
    'EUR',
  );
  const unknownValues = add(accountIds[2]!, null, 'SVC-LEGACY', 1, ['Platinum', 'On Hold', 'Quarterly'], ['2025-06-01', null], 300, 'GBP');
  return { contract, monthly, annual, unassigned, expired, unknownValues, ids: [monthly, annual, unassigned, expired, unknownValues] };
}
