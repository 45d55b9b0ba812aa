import { isCustomerScoped, type Identity } from '../../../../platform/identity.ts';
import { pageSize } from '../../../../platform/paging.ts';
import { listFilter } from '../../../../platform/validate.ts';
import type { CaseRecord } from '../connectors/types.ts';
import type {
  AssetResolvers,
  ContactResolvers,
  ContractResolvers,
  CustomerResolvers,
  InstalledProductResolvers,
  OrderResolvers,
} from '../__generated__/resolvers-types.ts';

/** A customer-scoped identity sees only its own customer's cases in a list; others see all. */
function ownCases(identity: Identity, cases: CaseRecord[]): CaseRecord[] {
  return isCustomerScoped(identity) ? cases.filter((record) => record.customerId === identity.customerId) : cases;
}

// Entities other systems own: the desk adds the cases that point to them. Their references
// resolve without a call; each field loads what it needs through a batched loader.

export const Customer: CustomerResolvers = {
  __resolveReference: ({ id }) => ({ id }),
  cases: ({ id }, { status, first }, { loaders }) =>
    loaders.casesByCustomer.load({
      key: id,
      args: { statuses: listFilter('status', status), limit: pageSize(first) },
    }),
  openCaseCount: ({ id }, _args, { loaders }) => loaders.openCaseCount.load(id),
  installedBase: ({ id }, _args, { loaders }) => loaders.installedBase.load(id),
  entitlements: ({ id }, _args, { loaders }) => loaders.entitlements.load(id),
};

export const InstalledProduct: InstalledProductResolvers = {
  order: (product) => ({ number: product.orderNumber }),
};

export const Contact: ContactResolvers = {
  __resolveReference: ({ id }) => ({ id }),
  requestedCases: ({ id }, { first }, { loaders }) => loaders.casesByContact.load({ key: id, args: pageSize(first) }),
};

export const Order: OrderResolvers = {
  __resolveReference: ({ number }) => ({ number }),
  cases: async ({ number }, _args, { loaders, identity }) => ownCases(identity, await loaders.casesByOrder.load(number)),
};

export const Asset: AssetResolvers = {
  __resolveReference: ({ serialNumber }) => ({ serialNumber }),
  cases: async ({ serialNumber }, _args, { loaders, identity }) => ownCases(identity, await loaders.casesBySerial.load(serialNumber)),
};

export const Contract: ContractResolvers = {
  __resolveReference: (reference) => reference,
  sla: ({ supportTier }, _args, { loaders }) => (supportTier ? loaders.slaPolicy.load(supportTier) : null),
};
