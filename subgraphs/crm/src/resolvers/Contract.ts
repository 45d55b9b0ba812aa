import type { ContractResolvers } from '../__generated__/resolvers-types.ts';

export const Contract: ContractResolvers = {
  __resolveReference: ({ id }, { loaders }) => loaders.contract.load(id),
  customer: (contract, _args, { loaders }) => loaders.customer.load(contract.customerId),
};
