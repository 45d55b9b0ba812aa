import type { ConnectorTelemetry } from '../../../../../platform/connector-telemetry.ts';
import { createInQuery, toDecimal } from '../../../../../platform/sql.ts';
import { probeDatabase, type Database } from '../../../../../platform/sqlite.ts';
import type {
  ContactRecord,
  ContractRecord,
  ContractStatus,
  CrmConnector,
  CustomerRecord,
  CustomerSegment,
  OpportunityRecord,
  SupportTier,
} from '../types.ts';
import { newSalesforceId } from './ids.ts';
import { CRM_SCHEMA, migrateCrm } from './tables.ts';
import { CONTRACT_STATUSES, SEGMENTS, TIERS } from '../vocabulary.ts';

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
const CONTRACT_COLUMNS = `k.ContractNumber, a.AccountNumber, k.Status, k.StartDate, k.EndDate, k.ContractTerm,
  k.SupportTier__c, k.SpecialTerms`;

/**
 * The CRM adapter over the embedded SQLite CRM (Salesforce-shaped tables). One SQL statement is
 * one call to the system, counted by the telemetry.
 */
export function createEmbeddedCrmConnector(db: Database, telemetry: ConnectorTelemetry): CrmConnector {
  migrateCrm(db);

  const inQuery = createInQuery(db);
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
        const id = newSalesforceId('00T');
        db.prepare(
          `INSERT INTO Task (Id, WhatId, AccountId, Subject, ActivityDate, Status, Priority, Description, TaskSubtype, CreatedDate, Concord_Key__c)
           VALUES (?, ?, ?, ?, ?, 'Completed', 'Normal', ?, 'Task', ?, ?)`,
        ).run(id, account.Id, account.Id, subject, activityDate, description ?? null, new Date().toISOString(), key);
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
        db.prepare(
          `INSERT INTO Task (Id, WhatId, AccountId, Subject, ActivityDate, Status, Priority, Description, TaskSubtype, CreatedDate, Concord_Key__c)
           VALUES (?, ?, ?, ?, ?, 'Completed', 'Normal', ?, 'Task', ?, ?)`,
        ).run(
          newSalesforceId('00T'),
          update.opportunityId,
          opportunity.AccountId,
          update.subject,
          update.activityDate,
          update.description ?? null,
          new Date().toISOString(),
          update.key,
        );
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
  const hasAddress = [row.BillingStreet, row.BillingCity, row.BillingState, row.BillingPostalCode, row.BillingCountry].some(Boolean);
  return {
    id: row.AccountNumber,
    crmId: row.Id,
    name: row.Name,
    segment: row.Segment__c ? (SEGMENTS[row.Segment__c] ?? null) : null,
    industry: row.Industry,
    accountOwner: row.OwnerName,
    phone: row.Phone,
    website: row.Website,
    billingAddress: hasAddress
      ? {
          street: row.BillingStreet,
          city: row.BillingCity,
          state: row.BillingState,
          postalCode: row.BillingPostalCode,
          country: row.BillingCountry,
        }
      : null,
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
