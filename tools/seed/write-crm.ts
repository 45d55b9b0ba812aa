import type { Database } from '../../platform/sqlite.ts';
import { derivedId, subscriptionsOf } from './subscriptions.ts';
import type { World } from './world.ts';

/** Child tables first, so clearing respects the foreign keys. */
const CRM_TABLES = ['Task', 'OpportunityLineItem', 'Opportunity', 'Subscription__c', 'Contract', 'Contact', 'Account', 'User'] as const;

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
       BillingPostalCode, BillingCountry, Phone, Website, AnnualRevenue, LastModifiedDate, Tax_Registration_Number__c, Billing_Email__c,
       CurrencyIsoCode, Onboarding_Status__c)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertContact = db.prepare(
    'INSERT INTO Contact (Id, AccountId, FirstName, LastName, Email, Phone, Title, LastModifiedDate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insertContract = db.prepare(
    `INSERT INTO Contract (Id, AccountId, ContractNumber, Status, StartDate, EndDate, ContractTerm, SpecialTerms, SupportTier__c, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertOpportunity = db.prepare(
    `INSERT INTO Opportunity (Id, AccountId, Name, StageName, IsClosed, IsWon, CloseDate, Amount, CurrencyIsoCode, ERP_Order_Number__c,
       ERP_Order_Status__c, Expected_Ship_Date__c, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertOpportunityLine = db.prepare(
    `INSERT INTO OpportunityLineItem (Id, OpportunityId, ProductCode, Name, Quantity, UnitPrice, TotalPrice, SortOrder)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertSubscription = db.prepare(
    `INSERT INTO Subscription__c (Id, Account__c, Contract__c, Plan_Code__c, Quantity__c, Support_Tier__c, Status__c, Start_Date__c, End_Date__c,
       Unit_Price__c, Billing_Frequency__c, CurrencyIsoCode, LastModifiedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const counts = { User: 0, Account: 0, Contact: 0, Contract: 0, Task: 0, Opportunity: 0, OpportunityLineItem: 0, Subscription__c: 0 };
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
      c.taxRegistrationNumber,
      c.billingEmail,
      c.currency,
      'Active',
    );
    counts.Account++;
  }
  // Prospects signed up but not yet customers: pending onboarding, no customer number (every 20th
  // customer's region has one).
  world.customers.forEach((c, i) => {
    if (i % 20 !== 0) return;
    const a = c.address;
    insertAccount.run(
      derivedId('001', `${c.number}:prospect`),
      `${c.name.split(' ')[0]} Northern Holdings`,
      null,
      'Prospect',
      c.industry,
      c.segment,
      c.ownerId,
      `${(i % 90) + 10} Commerce Park`,
      a.city,
      a.state,
      a.postalCode,
      a.countryName,
      null,
      null,
      null,
      `${world.asOf}T08:00:00Z`,
      null,
      `ap@${c.domain.replace(/^[^.]+/, 'northern')}`,
      c.currency,
      'Pending',
    );
    counts.Account++;
  });
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
  // Every contract's support is a subscription (a contract line), billed as its tier's plan.
  for (const sub of subscriptionsOf(world)) {
    const k = sub.contract;
    insertSubscription.run(
      sub.id,
      k.customer.accountId,
      k.id,
      sub.plan.number,
      sub.quantity,
      k.tier,
      sub.status,
      k.startDate,
      k.endDate,
      sub.unitPriceCents / 100,
      sub.frequency,
      k.customer.currency,
      k.modifiedAt,
    );
    counts.Subscription__c++;
  }
  // Every ERP order was a won opportunity, its order written back. Every fourth customer also
  // has a deal won but not yet ordered (its last order again), and every third one still open.
  const opportunity = (
    id: string,
    c: World['customers'][number],
    name: string,
    stage: string,
    closeDate: string,
    lines: { sku: string; name: string; quantity: number; unitPriceCents: number }[],
    order: { number: string; status: string; shipDate: string | null } | null,
  ) => {
    const cents = lines.reduce((sum, line) => sum + line.quantity * line.unitPriceCents, 0);
    const won = stage === 'Closed Won';
    insertOpportunity.run(
      id,
      c.accountId,
      name,
      stage,
      stage.startsWith('Closed') ? 1 : 0,
      won ? 1 : 0,
      closeDate,
      cents / 100,
      c.currency,
      order?.number ?? null,
      order?.status ?? null,
      order?.shipDate ?? null,
      `${closeDate}T09:00:00Z`,
    );
    counts.Opportunity++;
    lines.forEach((line, i) => {
      insertOpportunityLine.run(
        derivedId('00k', `${id}:${i}`),
        id,
        line.sku,
        line.name,
        line.quantity,
        line.unitPriceCents / 100,
        (line.quantity * line.unitPriceCents) / 100,
        i + 1,
      );
      counts.OpportunityLineItem++;
    });
  };
  const linesOf = (o: World['orders'][number]) =>
    o.lines.map((line) => ({
      sku: line.item.number,
      name: line.item.displayName,
      quantity: line.quantity,
      unitPriceCents: line.unitPriceCents,
    }));
  for (const o of world.orders)
    opportunity(derivedId('006', o.number), o.customer, `${o.customer.name}: ${o.number}`, 'Closed Won', o.orderDate, linesOf(o), {
      number: o.number,
      status: o.status.toUpperCase().replace(' ', '_'),
      shipDate: o.requestedDeliveryDate,
    });
  world.customers.forEach((c, i) => {
    const last = c.orders.at(-1);
    if (!last) return;
    if (i % 4 === 0)
      opportunity(derivedId('006', `${c.number}:reorder`), c, `${c.name}: reorder`, 'Closed Won', world.asOf, linesOf(last), null);
    if (i % 3 === 0)
      opportunity(
        derivedId('006', `${c.number}:expansion`),
        c,
        `${c.name}: expansion`,
        'Negotiation/Review',
        world.asOf,
        linesOf(last),
        null,
      );
  });
  return counts;
}
