import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EventBroker } from '../../platform/events/broker.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { CHANGE_LOG_TABLE } from '../../platform/events/sqlite-change-log.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { generateDevKeys, type DevKeys } from '../../platform/keys.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { startCrm } from '../../subgraphs/crm/src/index.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { startSalesforceServer, type ChangeEvent, type SalesforceServer } from '../vendors/salesforce/server.ts';

const logger = createLogger('test', process.env.TEST_LOG === '1' ? 'warn' : 'silent');
const dir = mkdtempSync(join(tmpdir(), 'concord-crm-feed-'));
let keys: DevKeys;
beforeAll(async () => {
  keys = await generateDevKeys();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const newBroker = () => embeddedBroker({ file: ':memory:', logger, pollMs: 20 });

/** The events of `broker` that `match`, waited for (up to `ms`) until there are `count`. */
async function eventsOf(broker: EventBroker, match: (event: CanonicalEvent<any>) => boolean, count = 1, ms = 2_000) {
  const until = Date.now() + ms;
  for (;;) {
    const found = (await broker.read({ limit: 10_000 })).map((stored) => stored.event as CanonicalEvent<any>).filter(match);
    if (found.length >= count || Date.now() > until) return found;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const latencies: Record<string, number[]> = {};
const measured = (name: string, ms: number) => (latencies[name] ??= []).push(ms);
afterAll(() => {
  for (const [name, values] of Object.entries(latencies)) {
    const sorted = [...values].sort((a, b) => a - b);
    console.log(
      `crm change feed, ${name}: n=${sorted.length} median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`,
    );
  }
});

describe('the embedded CRM change feed', () => {
  const file = join(dir, 'crm.sqlite');
  let writer: Database;
  let crm: RunningService | null = null;

  beforeAll(() => {
    writeFileSync(file, seededDatabases().crm.serialize());
    // Another process's connection to the file: the triggers, not the adapter, log what it writes.
    writer = openDatabase(file);
  });
  afterEach(async () => {
    await crm?.stop();
    crm = null;
  });
  afterAll(() => writer.close());

  const start = (broker: EventBroker) =>
    startCrm(
      { ...loadCrmConfig({ DATA_DIR: dir, HOST: '127.0.0.1', LOG_LEVEL: 'silent' }), port: 0 },
      { database: openDatabase(file), broker, logger, internalPublicKey: keys.internal.publicKey },
    );
  const one = <T>(sql: string, ...params: unknown[]) => writer.prepare(sql).get(...params) as T;

  it('publishes a change written to the file by another connection, with the canonical keys, within a second', async () => {
    const broker = newBroker();
    crm = await start(broker);
    const account = one<{ Id: string; AccountNumber: string }>(
      'SELECT Id, AccountNumber FROM Account WHERE AccountNumber IS NOT NULL ORDER BY AccountNumber LIMIT 1',
    );
    for (let i = 0; i < 20; i += 1) {
      // Writes land anywhere in the poll's period, as they would in use.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 100));
      const began = performance.now();
      writer.prepare('UPDATE Account SET Phone = ? WHERE Id = ?').run(`+1 555 01${String(i).padStart(2, '0')}`, account.Id);
      const [event] = await eventsOf(
        broker,
        (e) => e.type === 'concord.customer.updated' && e.data.customerId === account.AccountNumber,
        i + 1,
      );
      measured('a row written to the file → its event stored', performance.now() - began);
      expect(event).toMatchObject({ source: 'concord/crm', subject: `customer/${account.AccountNumber}` });
    }
    const events = await eventsOf(broker, (e) => e.type === 'concord.customer.updated', 20);
    expect(events.map((e) => e.data)).toEqual(Array(20).fill({ customerId: account.AccountNumber, changes: ['Phone'] }));
    // Each change has its own number: increasing versions.
    const versions = events.map((e) => Number(e.sequence));
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(new Set(versions).size).toBe(20);

    const subscription = one<{ Id: string; AccountNumber: string; Plan_Code__c: string }>(
      `SELECT s.Id, a.AccountNumber, s.Plan_Code__c FROM Subscription__c s JOIN Account a ON a.Id = s.Account__c
       WHERE a.AccountNumber IS NOT NULL LIMIT 1`,
    );
    writer.prepare(`UPDATE Subscription__c SET Quantity__c = 42, Status__c = 'Suspended' WHERE Id = ?`).run(subscription.Id);
    const [changed] = await eventsOf(broker, (e) => e.type === 'concord.subscription.updated');
    expect(changed!.data).toMatchObject({
      subscriptionId: subscription.Id,
      customerId: subscription.AccountNumber,
      plan: subscription.Plan_Code__c,
      quantity: 42,
      status: 'SUSPENDED',
      changes: expect.arrayContaining(['Quantity__c', 'Status__c']),
    });

    const contact = one<{ Id: string; AccountNumber: string }>(
      'SELECT c.Id, a.AccountNumber FROM Contact c JOIN Account a ON a.Id = c.AccountId WHERE a.AccountNumber IS NOT NULL LIMIT 1',
    );
    writer.prepare('DELETE FROM Contact WHERE Id = ?').run(contact.Id);
    const [deleted] = await eventsOf(broker, (e) => e.type === 'concord.contact.updated' && e.data.contactId === contact.Id);
    expect(deleted!.data).toEqual({ contactId: contact.Id, customerId: contact.AccountNumber, deleted: true });

    const prospect = one<{ Id: string }>('SELECT Id FROM Account WHERE AccountNumber IS NULL LIMIT 1');
    const reject = writer.prepare(`UPDATE Account SET Onboarding_Status__c = 'Rejected', Onboarding_Reason__c = 'No tax id' WHERE Id = ?`);
    reject.run(prospect.Id);
    const [rejected] = await eventsOf(broker, (e) => e.type === 'concord.account.updated' && e.data.accountId === prospect.Id);
    expect(rejected!.data).toEqual({
      accountId: prospect.Id,
      onboardingStatus: 'REJECTED',
      changes: expect.arrayContaining(['Onboarding_Status__c', 'Onboarding_Reason__c']),
    });
    // An update that writes the values already there changes nothing, and tells nothing.
    const before = (await broker.read({})).length;
    reject.run(prospect.Id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await broker.read({})).length).toBe(before);

    await broker.close();
  });

  it('publishes after a restart what changed while it was down, and nothing it published before', async () => {
    const contact = one<{ Id: string; AccountNumber: string }>(
      `SELECT c.Id, a.AccountNumber FROM Contact c JOIN Account a ON a.Id = c.AccountId WHERE a.AccountNumber IS NOT NULL
       ORDER BY c.Id DESC LIMIT 1`,
    );
    writer.prepare('UPDATE Contact SET Title = ? WHERE Id = ?').run('Head of Operations', contact.Id);
    const broker = newBroker();
    const began = performance.now();
    crm = await start(broker);
    const events = await eventsOf(broker, (e) => e.type === 'concord.contact.updated');
    measured('a change made while down → its event stored after restart', performance.now() - began);
    expect(events.map((e) => e.data)).toEqual([{ contactId: contact.Id, customerId: contact.AccountNumber, changes: ['Title'] }]);
    // Only that change: the earlier ones were published before the restart.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await broker.read({})).map((stored) => stored.event.type)).toEqual(['concord.contact.updated']);
    // The log behind the cursor is pruned.
    expect(one<{ n: number }>(`SELECT COUNT(*) AS n FROM ${CHANGE_LOG_TABLE}`).n).toBe(0);
    await broker.close();
  });

  it('loses nothing while the broker refuses: the changes are published once it takes them', async () => {
    const broker = newBroker();
    let refusing = true;
    let refused = 0;
    const flaky: EventBroker = {
      ...broker,
      async publish(events) {
        if (refusing) {
          refused += 1;
          throw new Error('broker unavailable');
        }
        return broker.publish(events);
      },
    };
    crm = await start(flaky);
    const contracts = writer.prepare('SELECT ContractNumber FROM Contract ORDER BY ContractNumber LIMIT 3').all() as {
      ContractNumber: string;
    }[];
    for (const { ContractNumber } of contracts)
      writer.prepare('UPDATE Contract SET SpecialTerms = ? WHERE ContractNumber = ?').run(`Net 45 (${ContractNumber})`, ContractNumber);
    const until = Date.now() + 2_000;
    while (refused < 3 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(refused).toBeGreaterThanOrEqual(3);
    expect(await broker.read({})).toEqual([]);
    refusing = false;
    const events = await eventsOf(broker, (e) => e.type === 'concord.contract.updated', 3);
    expect(events.map((e) => e.data.contractId).sort()).toEqual(contracts.map((c) => c.ContractNumber).sort());
    expect(events.every((e) => e.data.changes?.includes('SpecialTerms'))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await broker.read({})).length).toBe(3);
    await broker.close();
  });
});

describe('Salesforce change events at POST /hooks/salesforce', () => {
  const SECRET = 'salesforce-relay-secret-for-tests';
  let org: SalesforceServer;
  let crm: RunningService;
  let broker: EventBroker;
  let refusing = false;
  let hook: string;
  const crmDb = seededDatabases().crm;

  beforeAll(async () => {
    org = await startSalesforceServer({ db: crmDb });
    broker = newBroker();
    const flaky: EventBroker = {
      ...broker,
      async publish(events) {
        if (refusing) throw new Error('broker unavailable');
        return broker.publish(events);
      },
    };
    crm = await startCrm(
      {
        ...loadCrmConfig({
          DATA_DIR: dir,
          HOST: '127.0.0.1',
          LOG_LEVEL: 'silent',
          CRM_CONNECTOR: 'salesforce',
          SALESFORCE_INSTANCE_URL: org.instanceUrl,
          SALESFORCE_ACCESS_TOKEN: org.accessToken,
          SALESFORCE_WEBHOOK_SECRET: SECRET,
          CRM_RETRIES: '1',
        }),
        port: 0,
      },
      { broker: flaky, logger, internalPublicKey: keys.internal.publicKey },
    );
    hook = `http://127.0.0.1:${crm.port}/hooks/salesforce`;
  });
  afterAll(async () => {
    await crm?.stop();
    await broker?.close();
    await org?.close();
  });

  const signed = (body: string, at = new Date()) => {
    const timestamp = at.toISOString();
    return {
      'content-type': 'application/json',
      'x-concord-signature': createHmac('sha256', SECRET).update(timestamp).update(body).digest('base64'),
      'x-concord-signature-timestamp': timestamp,
    };
  };
  const post = async (events: ChangeEvent | ChangeEvent[] | string, headers?: Record<string, string>) => {
    const body = typeof events === 'string' ? events : JSON.stringify(events);
    const response = await fetch(hook, { method: 'POST', body, headers: headers ?? signed(body) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const customer = () => {
    const account = org.records('Account').find((record) => record.AccountNumber)!;
    return { id: String(account.Id), number: String(account.AccountNumber) };
  };

  it('turns an Account change into concord.customer.updated with the customer number read from the org', async () => {
    const { id, number } = customer();
    const event = org.change('Account', id, { Phone: '+1 555 0199' });
    const began = performance.now();
    const answer = await post(event);
    measured('a signed CDC notice → 202 with its events stored', performance.now() - began);
    expect(answer).toEqual({ status: 202, body: { accepted: 1 } });
    const [published] = await eventsOf(broker, (e) => e.type === 'concord.customer.updated' && e.data.customerId === number);
    expect(published).toMatchObject({
      source: 'concord/crm',
      subject: `customer/${number}`,
      sequence: String(event.ChangeEventHeader.commitNumber),
      correlationid: event.ChangeEventHeader.transactionKey,
      data: { customerId: number, changes: ['Phone', 'LastModifiedDate'] },
    });
    // The customer number came from one query for the account, by its Id.
    expect(org.requests.filter((request) => request.soql?.includes(id)).length).toBe(1);
  });

  it('refuses a notice with a bad signature or an old timestamp (401), and publishes nothing', async () => {
    const { id } = customer();
    const event = org.change('Account', id, { Website: 'https://tampered.example' });
    const body = JSON.stringify(event);
    const before = (await broker.read({})).length;
    const tampered = { ...signed(body), 'x-concord-signature': signed(`${body} `)['x-concord-signature'] };
    expect((await post(body, tampered)).status).toBe(401);
    expect((await post(body, signed(body, new Date(Date.now() - 10 * 60_000)))).status).toBe(401);
    expect((await post(body, { 'content-type': 'application/json' })).status).toBe(401);
    expect((await post('not json')).status).toBe(400);
    expect((await post(JSON.stringify({ hello: 'world' }))).status).toBe(400);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await broker.read({})).length).toBe(before);
  });

  it('stores the same notice told twice once', async () => {
    const { id, number } = customer();
    const event = org.change('Account', id, { Industry: 'Logistics' });
    expect((await post(event)).status).toBe(202);
    // The relay sends it again (its acknowledgement was lost), signed anew a little later.
    const body = JSON.stringify(event);
    expect((await post(body, signed(body, new Date(Date.now() + 1_000)))).status).toBe(202);
    const events = await eventsOf(broker, (e) => e.type === 'concord.customer.updated' && e.data.changes?.includes('Industry'), 2, 300);
    expect(events).toHaveLength(1);
    expect(events[0]!.data.customerId).toBe(number);
  });

  it('tells prospects, contacts, contracts, opportunities and subscriptions by their canonical keys', async () => {
    const prospect = org.records('Account').find((record) => !record.AccountNumber)!;
    const contact = org.records('Contact').find((record) => record.AccountId === customer().id) ?? org.records('Contact')[0]!;
    const contract = org.records('Contract')[0]!;
    const subscription = org.records('Subscription__c').find((record) => record.Account__c)!;
    const opportunity = org.records('Opportunity')[0];
    const notice = [
      org.change('Account', String(prospect.Id), { Onboarding_Status__c: 'Pending' }),
      org.change('Contact', String(contact.Id), { Title: 'CFO' }),
      org.change('Contract', String(contract.Id), { SpecialTerms: 'Net 60' }),
      org.change('Subscription__c', String(subscription.Id), { Quantity__c: 7 }),
      ...(opportunity ? [org.change('Opportunity', String(opportunity.Id), { StageName: 'Negotiation' })] : []),
    ];
    expect((await post(notice)).status).toBe(202);
    const events = await eventsOf(
      broker,
      (e) =>
        ['concord.account.updated', 'concord.contact.updated', 'concord.contract.updated', 'concord.subscription.updated'].includes(e.type),
      4,
    );
    const byType = new Map(events.map((e) => [e.type, e.data]));
    expect(byType.get('concord.account.updated')).toMatchObject({ accountId: prospect.Id, onboardingStatus: 'PENDING' });
    expect(byType.get('concord.contact.updated')).toMatchObject({ contactId: contact.Id, changes: ['Title', 'LastModifiedDate'] });
    expect(byType.get('concord.contract.updated')).toMatchObject({ contractId: contract.ContractNumber });
    expect(byType.get('concord.subscription.updated')).toMatchObject({ subscriptionId: subscription.Id, quantity: 7 });
    if (opportunity) {
      const [opened] = await eventsOf(broker, (e) => e.type === 'concord.opportunity.updated');
      expect(opened!.data).toMatchObject({ opportunityId: opportunity.Id, stage: 'Negotiation' });
    }

    const removed = org.remove('Contact', String(contact.Id));
    expect((await post(removed)).status).toBe(202);
    const [gone] = await eventsOf(broker, (e) => e.type === 'concord.contact.updated' && e.data.deleted === true);
    expect(gone!.data).toEqual({ contactId: contact.Id, deleted: true });
  });

  it('answers 503 while the broker refuses, so that the relay sends the notice again', async () => {
    const { id, number } = customer();
    const event = org.change('Account', id, { Phone: '+1 555 0142' });
    refusing = true;
    expect((await post(event)).status).toBe(503);
    refusing = false;
    expect((await post(event)).status).toBe(202);
    const events = await eventsOf(
      broker,
      (e) => e.data.customerId === number && e.sequence === String(event.ChangeEventHeader.commitNumber),
    );
    expect(events).toHaveLength(1);
  });
});
