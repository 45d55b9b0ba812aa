import { ownOrNull } from '../../../../platform/identity.ts';
import type { CustomerResolvers } from '../__generated__/resolvers-types.ts';

export const Customer: CustomerResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.customer.load(id), (c) => c.id),
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
