import type { ConnectorTelemetry } from '../../../../../platform/connector-telemetry.ts';
import { createInQuery, toDecimal } from '../../../../../platform/sql.ts';
import { installChangeLog } from '../../../../../platform/events/sqlite-change-log.ts';
import { probeDatabase, type Database } from '../../../../../platform/sqlite.ts';
import type {
  ContactRecord,
  ContractRecord,
  ContractStatus,
  CrmConnector,
  CustomerRecord,
  AccountRecord,
  CustomerSegment,
  OpportunityRecord,
  SubscriptionRecord,
  SupportTier,
} from '../types.ts';
import { CrmRefusal } from '../types.ts';
import { newSalesforceId } from './ids.ts';
import { CRM_CHANGE_TABLES, CRM_SCHEMA, migrateCrm } from './tables.ts';
import {
  billingAddressOf,
  CONTRACT_STATUSES,
  FREQUENCIES,
  ONBOARDING_FROM_CRM,
  ONBOARDING_TO_CRM,
  SEGMENTS,
  SUBSCRIPTION_STATUSES,
  TIERS,
} from '../vocabulary.ts';

interface AccountRow {
  Id: string;
  Name: string;
  AccountNumber: string;
  Industry: string | null;
  Segment__c: string | null;
  OwnerName: string | null;
  BillingStreet: string | null;
  BillingCity: string | null;
  BillingState: string | null;
  BillingPostalCode: string | null;
  BillingCountry: string | null;
  Phone: string | null;
  Website: string | null;
}

interface ContactRow {
  Id: string;
  AccountNumber: string | null;
  FirstName: string | null;
  LastName: string;
  Email: string | null;
  Phone: string | null;
  Title: string | null;
}

interface TaskRow {
  Id: string;
  AccountNumber: string;
  Subject: string;
  Description: string | null;
  ActivityDate: string | null;
}

interface ContractRow {
  Id: string;
  ContractNumber: string;
  AccountNumber: string;
  Status: string;
  StartDate: string | null;
  EndDate: string | null;
  ContractTerm: number | null;
  SupportTier__c: string;
  SpecialTerms: string | null;
}

const ACCOUNT_COLUMNS = `a.Id, a.Name, a.AccountNumber, a.Industry, a.Segment__c, u.Name AS OwnerName, a.BillingStreet,
  a.BillingCity, a.BillingState, a.BillingPostalCode, a.BillingCountry, a.Phone, a.Website`;
const CONTACT_COLUMNS = `c.Id, a.AccountNumber, c.FirstName, c.LastName, c.Email, c.Phone, c.Title`;
const TASK_SELECT = `t.Id, a.AccountNumber, t.Subject, t.Description, t.ActivityDate FROM Task t JOIN Account a ON a.Id = t.AccountId`;
const CONTRACT_COLUMNS = `k.Id, k.ContractNumber, a.AccountNumber, k.Status, k.StartDate, k.EndDate, k.ContractTerm,
  k.SupportTier__c, k.SpecialTerms`;

/**
 * The CRM adapter over the embedded SQLite CRM (Salesforce-shaped tables). One SQL statement is
 * one call to the system, counted by the telemetry.
 */
export function createEmbeddedCrmConnector(db: Database, telemetry: ConnectorTelemetry): CrmConnector {
  migrateCrm(db);
  // Every change to the file, whoever makes it, is logged for the CRM's change feed (feed/embedded.ts).
  installChangeLog(db, CRM_CHANGE_TABLES);

  const inQuery = createInQuery(db);
  /** A completed Task with Concord's key (its external id). */
  const insertTask = (task: {
    whatId: string;
    accountId: string | null;
    subject: string;
    activityDate: string;
    description?: string | undefined;
    key: string;
  }) => {
    const id = newSalesforceId('00T');
    db.prepare(
      `INSERT INTO Task (Id, WhatId, AccountId, Subject, ActivityDate, Status, Priority, Description, TaskSubtype, CreatedDate, Concord_Key__c)
       VALUES (?, ?, ?, ?, ?, 'Completed', 'Normal', ?, 'Task', ?, ?)`,
    ).run(id, task.whatId, task.accountId, task.subject, task.activityDate, task.description ?? null, new Date().toISOString(), task.key);
    return id;
  };
  const selectIn = <Row>(operation: string, sql: (list: string) => string, keys: readonly string[]): Promise<Row[]> =>
    telemetry.call(operation, { keys: keys.length }, () => inQuery<Row>(sql, keys));

  return {
    async customersByIds(ids) {
      const rows = await selectIn<AccountRow>(
        'customersByIds',
        (list) => `SELECT ${ACCOUNT_COLUMNS} FROM Account a LEFT JOIN "User" u ON u.Id = a.OwnerId WHERE a.AccountNumber IN (${list})`,
        ids,
      );
      return rows.map(toCustomer);
    },
    async contactsByIds(ids) {
      const rows = await selectIn<ContactRow>(
        'contactsByIds',
        (list) => `SELECT ${CONTACT_COLUMNS} FROM Contact c LEFT JOIN Account a ON a.Id = c.AccountId WHERE c.Id IN (${list})`,
        ids,
      );
      return rows.map(toContact);
    },
    async contactsByCustomerIds(customerIds) {
      const rows = await selectIn<ContactRow>(
        'contactsByCustomerIds',
        (list) =>
          `SELECT ${CONTACT_COLUMNS} FROM Contact c JOIN Account a ON a.Id = c.AccountId
           WHERE a.AccountNumber IN (${list}) ORDER BY c.LastName, c.FirstName, c.Id`,
        customerIds,
      );
      return rows.map(toContact);
    },
    async contractsByIds(ids) {
      const rows = await selectIn<ContractRow>(
        'contractsByIds',
        (list) => `SELECT ${CONTRACT_COLUMNS} FROM Contract k JOIN Account a ON a.Id = k.AccountId WHERE k.ContractNumber IN (${list})`,
        ids,
      );
      return rows.map(toContract);
    },
    async contractsByCrmIds(ids) {
      const rows = await selectIn<ContractRow>(
        'contractsByCrmIds',
        (list) => `SELECT ${CONTRACT_COLUMNS} FROM Contract k JOIN Account a ON a.Id = k.AccountId WHERE k.Id IN (${list})`,
        ids,
      );
      return rows.map(toContract);
    },
    async contractsByCustomerIds(customerIds) {
      const rows = await selectIn<ContractRow>(
        'contractsByCustomerIds',
        (list) =>
          `SELECT ${CONTRACT_COLUMNS} FROM Contract k JOIN Account a ON a.Id = k.AccountId
           WHERE a.AccountNumber IN (${list}) ORDER BY k.StartDate DESC, k.ContractNumber`,
        customerIds,
      );
      return rows.map(toContract);
    },
    async logActivity({ key, customerId, subject, description, activityDate }) {
      const log = db.transaction((): TaskRow | null => {
        const existing = db.prepare<[string], TaskRow>(`SELECT ${TASK_SELECT} WHERE t.Concord_Key__c = ?`).get(key);
        if (existing) return existing;
        const account = db.prepare<[string], { Id: string }>('SELECT Id FROM Account WHERE AccountNumber = ?').get(customerId);
        if (!account) return null;
        const id = insertTask({ whatId: account.Id, accountId: account.Id, subject, activityDate, description, key });
        return db.prepare<[string], TaskRow>(`SELECT ${TASK_SELECT} WHERE t.Id = ?`).get(id) ?? null;
      });
      const row = await telemetry.call('logActivity', {}, () => log.immediate());
      return (
        row && {
          id: row.Id,
          customerId: row.AccountNumber,
          subject: row.Subject,
          description: row.Description,
          activityDate: row.ActivityDate,
        }
      );
    },
    async accountsByIds(ids) {
      const rows = await selectIn<OnboardingAccountRow>(
        'accountsByIds',
        (list) => `SELECT ${ONBOARDING_SELECT} WHERE Id IN (${list})`,
        ids,
      );
      return rows.map(toAccount);
    },
    async recordAccountOnboarding(update) {
      const record = db.transaction((): OnboardingAccountRow | null => {
        const account = db.prepare<[string], OnboardingAccountRow>(`SELECT ${ONBOARDING_SELECT} WHERE Id = ?`).get(update.accountId);
        if (!account) return null;
        if (db.prepare('SELECT 1 FROM Task WHERE Concord_Key__c = ?').get(update.key)) return account;
        db.prepare(
          `UPDATE Account SET Onboarding_Status__c = ?, Onboarding_Reason__c = ?, AccountNumber = COALESCE(?, AccountNumber), LastModifiedDate = ?
           WHERE Id = ?`,
        ).run(ONBOARDING_TO_CRM[update.status], update.reason, update.customerNumber, new Date().toISOString(), update.accountId);
        insertTask({
          whatId: update.accountId,
          accountId: update.accountId,
          subject: update.subject,
          activityDate: update.activityDate,
          description: update.description,
          key: update.key,
        });
        return db.prepare<[string], OnboardingAccountRow>(`SELECT ${ONBOARDING_SELECT} WHERE Id = ?`).get(update.accountId) ?? null;
      });
      const row = await telemetry.call('recordAccountOnboarding', {}, () => {
        try {
          return record.immediate();
        } catch (error) {
          // Another account holds the number: the CRM refuses it, as Salesforce's duplicate rule does.
          if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && /AccountNumber/.test(String(error)))
            throw new CrmRefusal(`Another account has the number ${update.customerNumber}`, 'DUPLICATE_VALUE');
          throw error;
        }
      });
      return row && toAccount(row);
    },
    async subscriptionsByIds(ids) {
      const rows = await selectIn<SubscriptionRow>(
        'subscriptionsByIds',
        (list) =>
          `SELECT s.Id, a.AccountNumber, k.ContractNumber, s.Plan_Code__c, s.Quantity__c, s.Support_Tier__c, s.Status__c, s.Start_Date__c,
             s.End_Date__c, s.Unit_Price__c, s.Billing_Frequency__c, s.CurrencyIsoCode
           FROM Subscription__c s LEFT JOIN Account a ON a.Id = s.Account__c LEFT JOIN Contract k ON k.Id = s.Contract__c
           WHERE s.Id IN (${list})`,
        ids,
      );
      return rows.map(toSubscription);
    },
    async opportunitiesByIds(ids) {
      const rows = await selectIn<OpportunityRow>(
        'opportunitiesByIds',
        (list) => `SELECT ${OPPORTUNITY_SELECT} WHERE o.Id IN (${list})`,
        ids,
      );
      return rows.map(toOpportunity);
    },
    async opportunityLinesByOpportunityIds(ids) {
      const rows = await selectIn<OpportunityLineRow>(
        'opportunityLinesByOpportunityIds',
        (list) =>
          `SELECT OpportunityId, ProductCode, Name, Quantity, UnitPrice, SortOrder FROM OpportunityLineItem
           WHERE OpportunityId IN (${list}) ORDER BY OpportunityId, SortOrder, Id`,
        ids,
      );
      return rows.map((row) => ({
        opportunityId: row.OpportunityId,
        sku: row.ProductCode,
        name: row.Name,
        quantity: row.Quantity,
        unitPrice: toDecimal(row.UnitPrice),
        sortOrder: row.SortOrder,
      }));
    },
    async recordOpportunityOrder(update) {
      const record = db.transaction((): OpportunityRow | null => {
        const opportunity = db.prepare<[string], OpportunityRow>(`SELECT ${OPPORTUNITY_SELECT} WHERE o.Id = ?`).get(update.opportunityId);
        if (!opportunity) return null;
        if (db.prepare('SELECT 1 FROM Task WHERE Concord_Key__c = ?').get(update.key)) return opportunity;
        db.prepare(
          `UPDATE Opportunity SET ERP_Order_Number__c = ?, ERP_Order_Status__c = ?, Expected_Ship_Date__c = ?, LastModifiedDate = ? WHERE Id = ?`,
        ).run(update.orderNumber, update.orderStatus, update.expectedShipDate, new Date().toISOString(), update.opportunityId);
        insertTask({
          whatId: update.opportunityId,
          accountId: opportunity.AccountId,
          subject: update.subject,
          activityDate: update.activityDate,
          description: update.description,
          key: update.key,
        });
        return db.prepare<[string], OpportunityRow>(`SELECT ${OPPORTUNITY_SELECT} WHERE o.Id = ?`).get(update.opportunityId) ?? null;
      });
      const row = await telemetry.call('recordOpportunityOrder', {}, () => record.immediate());
      return row && toOpportunity(row);
    },
    async ping() {
      await telemetry.call('ping', {}, () => probeDatabase(db, CRM_SCHEMA.rowsIn));
    },
    async close() {
      db.close();
    },
  };
}

function toCustomer(row: AccountRow): CustomerRecord {
  return {
    id: row.AccountNumber,
    crmId: row.Id,
    name: row.Name,
    segment: row.Segment__c ? (SEGMENTS[row.Segment__c] ?? null) : null,
    industry: row.Industry,
    accountOwner: row.OwnerName,
    phone: row.Phone,
    website: row.Website,
    billingAddress: billingAddressOf(row),
  };
}

function toContact(row: ContactRow): ContactRecord {
  return {
    id: row.Id,
    customerId: row.AccountNumber,
    firstName: row.FirstName,
    lastName: row.LastName,
    email: row.Email,
    phone: row.Phone,
    title: row.Title,
  };
}

function toContract(row: ContractRow): ContractRecord {
  return {
    id: row.ContractNumber,
    crmId: row.Id,
    customerId: row.AccountNumber,
    status: CONTRACT_STATUSES[row.Status] ?? 'DRAFT',
    startDate: row.StartDate,
    endDate: row.EndDate,
    termMonths: row.ContractTerm,
    supportTier: TIERS[row.SupportTier__c] ?? 'BASIC',
    specialTerms: row.SpecialTerms,
  };
}

interface OpportunityRow {
  Id: string;
  AccountId: string | null;
  AccountNumber: string | null;
  Name: string;
  StageName: string;
  IsClosed: number;
  IsWon: number;
  CloseDate: string | null;
  Amount: number | null;
  CurrencyIsoCode: string;
  ERP_Order_Number__c: string | null;
  ERP_Order_Status__c: string | null;
  Expected_Ship_Date__c: string | null;
}

interface OpportunityLineRow {
  OpportunityId: string;
  ProductCode: string;
  Name: string | null;
  Quantity: number;
  UnitPrice: number;
  SortOrder: number;
}

const OPPORTUNITY_SELECT = `o.Id, o.AccountId, a.AccountNumber, o.Name, o.StageName, o.IsClosed, o.IsWon, o.CloseDate, o.Amount,
  o.CurrencyIsoCode, o.ERP_Order_Number__c, o.ERP_Order_Status__c, o.Expected_Ship_Date__c
  FROM Opportunity o LEFT JOIN Account a ON a.Id = o.AccountId`;

function toOpportunity(row: OpportunityRow): OpportunityRecord {
  return {
    id: row.Id,
    customerId: row.AccountNumber,
    name: row.Name,
    stage: row.StageName,
    isClosed: row.IsClosed === 1,
    isWon: row.IsWon === 1,
    closeDate: row.CloseDate,
    amount: row.Amount === null ? null : toDecimal(row.Amount),
    currency: row.CurrencyIsoCode,
    erpOrderNumber: row.ERP_Order_Number__c,
    erpOrderStatus: row.ERP_Order_Status__c,
    expectedShipDate: row.Expected_Ship_Date__c,
  };
}

interface OnboardingAccountRow {
  Id: string;
  AccountNumber: string | null;
  Name: string;
  BillingStreet: string | null;
  BillingCity: string | null;
  BillingState: string | null;
  BillingPostalCode: string | null;
  BillingCountry: string | null;
  Phone: string | null;
  Tax_Registration_Number__c: string | null;
  Billing_Email__c: string | null;
  CurrencyIsoCode: string | null;
  Onboarding_Status__c: string | null;
  Onboarding_Reason__c: string | null;
}

const ONBOARDING_SELECT = `Id, AccountNumber, Name, BillingStreet, BillingCity, BillingState, BillingPostalCode, BillingCountry, Phone,
  Tax_Registration_Number__c, Billing_Email__c, CurrencyIsoCode, Onboarding_Status__c, Onboarding_Reason__c FROM Account`;

function toAccount(row: OnboardingAccountRow): AccountRecord {
  return {
    id: row.Id,
    customerId: row.AccountNumber,
    name: row.Name,
    billingAddress: billingAddressOf(row),
    phone: row.Phone,
    taxRegistrationNumber: row.Tax_Registration_Number__c,
    billingEmail: row.Billing_Email__c,
    currency: row.CurrencyIsoCode ?? 'USD',
    onboardingStatus: row.Onboarding_Status__c ? (ONBOARDING_FROM_CRM[row.Onboarding_Status__c] ?? 'PENDING') : 'ACTIVE',
    onboardingReason: row.Onboarding_Reason__c,
  };
}

interface SubscriptionRow {
  Id: string;
  AccountNumber: string | null;
  ContractNumber: string | null;
  Plan_Code__c: string;
  Quantity__c: number;
  Support_Tier__c: string;
  Status__c: string;
  Start_Date__c: string | null;
  End_Date__c: string | null;
  Unit_Price__c: number;
  Billing_Frequency__c: string;
  CurrencyIsoCode: string | null;
}

function toSubscription(row: SubscriptionRow): SubscriptionRecord {
  return {
    id: row.Id,
    customerId: row.AccountNumber,
    contractId: row.ContractNumber,
    plan: row.Plan_Code__c,
    quantity: row.Quantity__c,
    tier: TIERS[row.Support_Tier__c] ?? 'BASIC',
    status: SUBSCRIPTION_STATUSES[row.Status__c] ?? 'DRAFT',
    startDate: row.Start_Date__c,
    endDate: row.End_Date__c,
    unitPrice: toDecimal(row.Unit_Price__c),
    frequency: FREQUENCIES[row.Billing_Frequency__c] ?? 'MONTHLY',
    currency: row.CurrencyIsoCode ?? 'USD',
  };
}
