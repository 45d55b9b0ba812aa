import { ownOrNull } from '../../../../platform/identity.ts';
import type { AccountResolvers } from '../__generated__/resolvers-types.ts';

export const Account: AccountResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.account.load(id), (a) => a.customerId),
  customer: (account, _args, { loaders }) => (account.customerId ? loaders.customer.load(account.customerId) : null),
};
