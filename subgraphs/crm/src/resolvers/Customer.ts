import { ownOrNull } from '../../../../platform/identity.ts';
import { selectionOf, startEarly } from '../../../../platform/selection.ts';
import type { CustomerResolvers } from '../__generated__/resolvers-types.ts';

export const Customer: CustomerResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }, info) => {
    // Contracts and contacts are read by customer number, which the reference holds: when the
    // query selects them they are read beside the account, not after it.
    const selection = selectionOf(info, 'Customer');
    if (selection.has('contracts') || selection.has('activeContract')) startEarly(loaders.contractsByCustomer.load(id));
    if (selection.has('contacts')) startEarly(loaders.contactsByCustomer.load(id));
    return ownOrNull(identity, await loaders.customer.load(id), (c) => c.id);
  },
  contacts: (customer, _args, { loaders }) => loaders.contactsByCustomer.load(customer.id),
  contracts: (customer, _args, { loaders }) => loaders.contractsByCustomer.load(customer.id),
  async activeContract(customer, _args, { loaders, today }) {
    const contracts = await loaders.contractsByCustomer.load(customer.id);
    // Contracts arrive newest first: the first one in force today wins.
    return (
      contracts.find(
        (contract) =>
          contract.status === 'ACTIVATED' &&
          (contract.startDate === null || contract.startDate <= today) &&
          (contract.endDate === null || contract.endDate >= today),
      ) ?? null
    );
  },
};
