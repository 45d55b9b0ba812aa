import { listLoader, recordLoader } from '../../../platform/loaders.ts';
import type { CrmConnector } from './connectors/types.ts';

/** One DataLoader per entity and list edge; a new set per request. */
export function createLoaders(crm: CrmConnector) {
  return {
    customer: recordLoader(
      (ids: readonly string[]) => crm.customersByIds(ids),
      (record) => record.id,
    ),
    contact: recordLoader(
      (ids: readonly string[]) => crm.contactsByIds(ids),
      (record) => record.id,
    ),
    contract: recordLoader(
      (ids: readonly string[]) => crm.contractsByIds(ids),
      (record) => record.id,
    ),
    contactsByCustomer: listLoader(
      (ids: readonly string[]) => crm.contactsByCustomerIds(ids),
      (record) => record.customerId ?? '',
    ),
    account: recordLoader(
      (ids: readonly string[]) => crm.accountsByIds(ids),
      (record) => record.id,
    ),
    subscription: recordLoader(
      (ids: readonly string[]) => crm.subscriptionsByIds(ids),
      (record) => record.id,
    ),
    opportunity: recordLoader(
      (ids: readonly string[]) => crm.opportunitiesByIds(ids),
      (record) => record.id,
    ),
    opportunityLines: listLoader(
      (ids: readonly string[]) => crm.opportunityLinesByOpportunityIds(ids),
      (record) => record.opportunityId,
    ),
    contractsByCustomer: listLoader(
      (ids: readonly string[]) => crm.contractsByCustomerIds(ids),
      (record) => record.customerId,
    ),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
