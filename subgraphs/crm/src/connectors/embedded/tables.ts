import type { Database } from 'better-sqlite3';
import type { WatchedTable } from '../../../../../platform/events/sqlite-change-log.ts';
import type { ExpectedSchema } from '../../../../../platform/sqlite.ts';

/**
 * The embedded CRM: tables shaped like the Salesforce objects the CRM adapter reads (field names
 * as in the REST API, 18-character Ids, custom fields with the __c suffix).
 */
export const CRM_TABLES = /* SQL */ `
CREATE TABLE IF NOT EXISTS "User" (
  Id TEXT PRIMARY KEY,
  Name TEXT NOT NULL,
  Email TEXT,
  IsActive INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS Account (
  Id TEXT PRIMARY KEY,
  Name TEXT NOT NULL,
  AccountNumber TEXT UNIQUE,
  Type TEXT,
  Industry TEXT,
  Segment__c TEXT,
  OwnerId TEXT REFERENCES "User"(Id),
  BillingStreet TEXT,
  BillingCity TEXT,
  BillingState TEXT,
  BillingPostalCode TEXT,
  BillingCountry TEXT,
  Phone TEXT,
  Website TEXT,
  AnnualRevenue REAL,
  Tax_Registration_Number__c TEXT,
  Billing_Email__c TEXT,
  CurrencyIsoCode TEXT,
  Onboarding_Status__c TEXT,       -- Pending | Active | Rejected; none: from before onboarding
  Onboarding_Reason__c TEXT,
  LastModifiedDate TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS Contact (
  Id TEXT PRIMARY KEY,
  AccountId TEXT REFERENCES Account(Id),
  FirstName TEXT,
  LastName TEXT NOT NULL,
  Email TEXT,
  Phone TEXT,
  Title TEXT,
  LastModifiedDate TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS Contact_AccountId ON Contact(AccountId);
CREATE TABLE IF NOT EXISTS Contract (
  Id TEXT PRIMARY KEY,
  AccountId TEXT NOT NULL REFERENCES Account(Id),
  ContractNumber TEXT NOT NULL UNIQUE,
  Status TEXT NOT NULL,
  StartDate TEXT,
  EndDate TEXT,
  ContractTerm INTEGER,
  SpecialTerms TEXT,
  SupportTier__c TEXT NOT NULL,
  LastModifiedDate TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS Contract_AccountId ON Contract(AccountId);
CREATE TABLE IF NOT EXISTS Task (
  Id TEXT PRIMARY KEY,
  WhatId TEXT,
  AccountId TEXT REFERENCES Account(Id),
  Subject TEXT NOT NULL,
  ActivityDate TEXT,
  Status TEXT NOT NULL,
  Priority TEXT NOT NULL,
  Description TEXT,
  TaskSubtype TEXT,
  CreatedDate TEXT NOT NULL,
  Concord_Key__c TEXT UNIQUE   -- external id: the idempotency key that created the Task
);
CREATE INDEX IF NOT EXISTS Task_AccountId ON Task(AccountId);
CREATE TABLE IF NOT EXISTS Subscription__c (  -- the CRM-owned contract lines (a custom object)
  Id TEXT PRIMARY KEY,
  Account__c TEXT REFERENCES Account(Id),
  Contract__c TEXT REFERENCES Contract(Id),
  Plan_Code__c TEXT NOT NULL,      -- the ERP item it is billed as
  Quantity__c REAL NOT NULL,
  Support_Tier__c TEXT NOT NULL,   -- Basic | Standard | Premium
  Status__c TEXT NOT NULL,         -- Draft | Active | Suspended | Expired
  Start_Date__c TEXT,
  End_Date__c TEXT,
  Unit_Price__c REAL NOT NULL,     -- per unit and billing period
  Billing_Frequency__c TEXT NOT NULL,  -- Monthly | Annual
  CurrencyIsoCode TEXT,
  LastModifiedDate TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS Subscription_Account ON Subscription__c(Account__c);
CREATE TABLE IF NOT EXISTS Opportunity (
  Id TEXT PRIMARY KEY,
  AccountId TEXT REFERENCES Account(Id),
  Name TEXT NOT NULL,
  StageName TEXT NOT NULL,
  IsClosed INTEGER NOT NULL DEFAULT 0,
  IsWon INTEGER NOT NULL DEFAULT 0,
  CloseDate TEXT,
  Amount REAL,
  CurrencyIsoCode TEXT NOT NULL DEFAULT 'USD',
  ERP_Order_Number__c TEXT,        -- custom fields the process layer writes back
  ERP_Order_Status__c TEXT,
  Expected_Ship_Date__c TEXT,
  LastModifiedDate TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS Opportunity_AccountId ON Opportunity(AccountId);
CREATE TABLE IF NOT EXISTS OpportunityLineItem (
  Id TEXT PRIMARY KEY,
  OpportunityId TEXT NOT NULL REFERENCES Opportunity(Id),
  ProductCode TEXT NOT NULL,
  Name TEXT,
  Quantity REAL NOT NULL,
  UnitPrice REAL NOT NULL,
  TotalPrice REAL NOT NULL,
  SortOrder INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS OpportunityLineItem_OpportunityId ON OpportunityLineItem(OpportunityId, SortOrder);
`;

/**
 * The tables whose changes the embedded CRM logs for its change feed, each with the columns its
 * events are built from when the row is gone (deleted) or has changed again since: the keys, and
 * what a subscription's or a contract's event must say.
 */
export const CRM_CHANGE_TABLES: readonly WatchedTable[] = [
  { table: 'Account', columns: ['Id', 'AccountNumber', 'Onboarding_Status__c'] },
  { table: 'Contact', columns: ['Id', 'AccountId'] },
  { table: 'Contract', columns: ['Id', 'ContractNumber', 'AccountId', 'Status', 'SupportTier__c', 'StartDate', 'EndDate'] },
  { table: 'Opportunity', columns: ['Id', 'AccountId', 'StageName', 'IsClosed', 'IsWon', 'ERP_Order_Number__c'] },
  { table: 'OpportunityLineItem', columns: ['OpportunityId'] },
  {
    table: 'Subscription__c',
    columns: [
      'Id',
      'Account__c',
      'Contract__c',
      'Plan_Code__c',
      'Quantity__c',
      'Support_Tier__c',
      'Status__c',
      'Start_Date__c',
      'End_Date__c',
      'Unit_Price__c',
      'Billing_Frequency__c',
      'CurrencyIsoCode',
    ],
  },
];

/**
 * What a crm database must hold to be served: the tables every seeded database has (the
 * migration adds the others) and rows in Account.
 */
export const CRM_SCHEMA: ExpectedSchema = { tables: ['User', 'Account', 'Contact', 'Contract'], rowsIn: 'Account' };

/** Creates the tables when missing and adds columns an older database lacks; safe on every start. */
// Columns added after the first release of their tables.
const ADDED_COLUMNS: Record<string, Record<string, string>> = {
  Account: {
    Tax_Registration_Number__c: 'TEXT',
    Billing_Email__c: 'TEXT',
    CurrencyIsoCode: 'TEXT',
    Onboarding_Status__c: 'TEXT',
    Onboarding_Reason__c: 'TEXT',
  },
};

export function migrateCrm(db: Database): void {
  for (const [table, columns] of Object.entries(ADDED_COLUMNS)) {
    const existing = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all();
    if (existing.length === 0) continue;
    for (const [column, type] of Object.entries(columns))
      if (!existing.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }
  const task = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('Task')`).all();
  if (task.length && !task.some((column) => column.name === 'Concord_Key__c')) {
    db.exec('ALTER TABLE Task ADD COLUMN Concord_Key__c TEXT');
    db.exec('CREATE UNIQUE INDEX IF NOT EXISTS Task_Concord_Key ON Task(Concord_Key__c)');
  }
  db.exec(CRM_TABLES);
}
