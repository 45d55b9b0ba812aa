import { ownOrNull } from '../../../../platform/identity.ts';
import type { ContractResolvers } from '../__generated__/resolvers-types.ts';

export const Contract: ContractResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.contract.load(id), (c) => c.customerId),
  customer: (contract, _args, { loaders }) => loaders.customer.load(contract.customerId),
};
