import type { ConnectorTelemetry } from '../../../../../platform/connector-telemetry.ts';
import { createInQuery } from '../../../../../platform/sql.ts';
import { probeDatabase, type Database } from '../../../../../platform/sqlite.ts';
import type {
  ContactRecord,
  ContractRecord,
  ContractStatus,
  CrmConnector,
  CustomerRecord,
  CustomerSegment,
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
