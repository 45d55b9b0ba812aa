import { ownOrNull } from '../../../../platform/identity.ts';
import type { ServiceSubscriptionResolvers } from '../__generated__/resolvers-types.ts';

export const ServiceSubscription: ServiceSubscriptionResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) =>
    ownOrNull(identity, await loaders.subscription.load(id), (s) => s.customerId),
  customer: (subscription, _args, { loaders }) => (subscription.customerId ? loaders.customer.load(subscription.customerId) : null),
  contract: (subscription, _args, { loaders }) => (subscription.contractId ? loaders.contract.load(subscription.contractId) : null),
};
