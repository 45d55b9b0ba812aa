import type { Owners, PolicyTable } from '../../../platform/authorization.ts';
import { AGENTS, STAFF } from '../../../platform/identity.ts';
import type { CaseRecord, CustomerRef } from './connectors/types.ts';

const OWN = 'portal_customer:own';
const PORTAL = 'portal_customer';

/**
 * Who sees what of the support desk. A field not listed is visible to no one; `integration`
 * sees all. Root fields and the case lists on other systems' entities admit portal customers,
 * and their resolvers return only the token's customer's cases. Internal notes are left out of
 * Case.comments for everyone but agents.
 */
export const SUPPORT_POLICY: PolicyTable = {
  'Query.case': [...STAFF, PORTAL],
  'Query.cases': [...STAFF, PORTAL],
  'CaseConnection.*': [...STAFF, PORTAL],
  'CaseEdge.*': [...STAFF, PORTAL],
  'PageInfo.*': [...STAFF, PORTAL],

  'Case.*': [...STAFF, OWN],
  // Finance sees cases, not the conversation.
  'Case.comments': [...AGENTS, 'sales_rep', OWN],
  'CaseComment.*': [...AGENTS, 'sales_rep', PORTAL],
  'Agent.id': [...STAFF],
  'Agent.name': [...STAFF, PORTAL],
  'Agent.email': [...STAFF],

  'Customer.id': [...STAFF, OWN],
  'Customer.cases': [...STAFF, OWN],
  'Customer.openCaseCount': [...STAFF, OWN],
  'Customer.installedBase': [...STAFF, OWN],
  'InstalledProduct.*': [...STAFF, PORTAL],
  'Customer.entitlements': [...STAFF, OWN],
  'Entitlement.*': [...STAFF, PORTAL],
  'Contact.id': [...STAFF, PORTAL],
  'Contact.requestedCases': [...AGENTS, 'sales_rep'],
  'Order.number': [...STAFF, PORTAL],
  'Order.cases': [...STAFF, PORTAL],
  'Asset.serialNumber': [...AGENTS, PORTAL],
  'Asset.cases': [...AGENTS, PORTAL],
  'Contract.id': [...AGENTS, 'sales_rep', PORTAL],
  'Contract.sla': [...AGENTS, 'sales_rep', PORTAL],
  'SlaPolicy.*': [...AGENTS, 'sales_rep', PORTAL],
  'SlaTarget.*': [...AGENTS, 'sales_rep', PORTAL],

  // Concord's own processes note outcomes on cases (integration only).
  'Mutation.recordCaseUpdate': ['integration'],
  'Mutation.recordInstalledBase': ['integration'],
  'Mutation.setEntitlement': ['integration'],
};

export const SUPPORT_OWNERS: Owners = {
  Case: (record: CaseRecord) => record.customerId,
  Customer: (customer: CustomerRef) => customer.id,
};
