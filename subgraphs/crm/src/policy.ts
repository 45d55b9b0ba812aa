import type { Owners, PolicyTable, SensitiveFields } from '../../../platform/authorization.ts';
import { AGENTS, STAFF } from '../../../platform/identity.ts';
import type { ContactRecord, ContractRecord, CustomerRecord } from './connectors/types.ts';

const OWN = 'portal_customer:own';
const PORTAL = 'portal_customer';

/**
 * Who sees what of the CRM. A field not listed is visible to no one; `integration` sees all.
 * Root fields admit portal customers, and their resolvers answer only for the token's customer.
 */
export const CRM_POLICY: PolicyTable = {
  'Query.customer': [...STAFF, PORTAL],
  'Query.contact': [...AGENTS, 'sales_rep'],
  'Query.contract': [...AGENTS, 'sales_rep', PORTAL],
  'Query.opportunity': [...STAFF],
  'Query.account': [...STAFF],
  'Query.serviceSubscription': [...STAFF],

  'Customer.id': [...STAFF, OWN],
  'Customer.name': [...STAFF, OWN],
  'Customer.segment': [...STAFF],
  'Customer.industry': [...STAFF],
  'Customer.accountOwner': [...STAFF],
  'Customer.phone': [...STAFF, OWN],
  'Customer.website': [...STAFF, OWN],
  'Customer.billingAddress': [...STAFF, OWN],
  'Customer.contacts': [...AGENTS, 'sales_rep'],
  'Customer.contracts': [...AGENTS, 'sales_rep', OWN],
  'Customer.activeContract': [...AGENTS, 'sales_rep', OWN],
  'Address.*': [...STAFF, PORTAL],

  // Contacts are personal data: their names reach the customer's own portal, nothing more.
  'Contact.id': [...AGENTS, 'sales_rep', OWN],
  'Contact.firstName': [...AGENTS, 'sales_rep', OWN],
  'Contact.lastName': [...AGENTS, 'sales_rep', OWN],
  'Contact.name': [...AGENTS, 'sales_rep', OWN],
  'Contact.email': [...AGENTS, 'sales_rep'],
  'Contact.phone': [...AGENTS, 'sales_rep'],
  'Contact.title': [...AGENTS, 'sales_rep'],
  'Contact.customer': [...AGENTS, 'sales_rep'],

  // Concord's own processes write activities (integration only).
  'Mutation.logCustomerActivity': ['integration'],
  'CustomerActivity.*': ['integration'],
  'Mutation.recordOpportunityOrder': ['integration'],
  'Mutation.recordAccountOnboarding': ['integration'],

  // Accounts before they are customers: sales and finance onboard them; the tax number is theirs.
  'Account.*': [...STAFF],
  'Account.taxRegistrationNumber': ['sales_rep', 'finance'],

  // Subscriptions: what a customer is entitled to and billed for.
  'ServiceSubscription.*': [...STAFF],

  // Deals are sales' and finance's; agents see what was sold (the installed base, the order).
  'Opportunity.*': [...STAFF],
  'OpportunityLine.*': [...STAFF],
  'Order.number': [...STAFF],

  // The contract is the entitlement agents check; the customer may read its own.
  'Contract.*': [...AGENTS, 'sales_rep', OWN],
};

export const CRM_OWNERS: Owners = {
  Customer: (customer: CustomerRecord) => customer.id,
  Contact: (contact: ContactRecord) => contact.customerId,
  Contract: (contract: ContractRecord) => contract.customerId,
};

export const CRM_SENSITIVE: SensitiveFields = {
  'Contact.email': (contact: ContactRecord) => contact.id,
  'Contact.phone': (contact: ContactRecord) => contact.id,
};
