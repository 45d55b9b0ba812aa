import type { Database } from '../../platform/sqlite.ts';
import type { World } from './world.ts';

/** Child tables first, so clearing respects the foreign keys. */
const CRM_TABLES = ['Task', 'Contract', 'Contact', 'Account', 'User'] as const;

/**
 * Writes the world's CRM side (sales reps, accounts, contacts, contracts) in Salesforce's field
 * names and Ids, replacing whatever the tables held. Run it inside a transaction.
 * Returns the number of rows per table.
 */
export function writeCrm(db: Database, world: World): Record<string, number> {
  for (const table of CRM_TABLES) db.prepare(`DELETE FROM "${table}"`).run();
  const insertUser = db.prepare('INSERT INTO "User" (Id, Name, Email, IsActive) VALUES (?, ?, ?, ?)');
  const insertAccount = db.prepare(
    `INSERT INTO Account (Id, Name, AccountNumber, Type, Industry, Segment__c, OwnerId, BillingStreet, BillingCity, BillingState,
       BillingPostalCode, BillingCountry, Phone, Website, AnnualRevenue, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertContact = db.prepare(
    'INSERT INTO Contact (Id, AccountId, FirstName, LastName, Email, Phone, Title, LastModifiedDate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insertContract = db.prepare(
    `INSERT INTO Contract (Id, AccountId, ContractNumber, Status, StartDate, EndDate, ContractTerm, SpecialTerms, SupportTier__c, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const counts = { User: 0, Account: 0, Contact: 0, Contract: 0, Task: 0 };
  for (const rep of world.salesReps) {
    insertUser.run(rep.id, rep.name, rep.email, rep.isActive ? 1 : 0);
    counts.User++;
  }
  for (const c of world.customers) {
    const a = c.address;
    insertAccount.run(
      c.accountId,
      c.name,
      c.number,
      c.type,
      c.industry,
      c.segment,
      c.ownerId,
      a.street,
      a.city,
      a.state,
      a.postalCode,
      a.countryName,
      c.phone,
      c.website,
      c.annualRevenue,
      c.accountModifiedAt,
    );
    counts.Account++;
  }
  for (const c of world.customers) {
    for (const p of c.contacts) {
      insertContact.run(p.id, c.accountId, p.firstName, p.lastName, p.email, p.phone, p.title, p.modifiedAt);
      counts.Contact++;
    }
  }
  for (const k of world.contracts) {
    insertContract.run(
      k.id,
      k.customer.accountId,
      k.number,
      k.status,
      k.startDate,
      k.endDate,
      k.termMonths,
      k.specialTerms,
      k.tier,
      k.modifiedAt,
    );
    counts.Contract++;
  }
  return counts;
}
