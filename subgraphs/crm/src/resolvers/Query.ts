import { withinScope } from '../../../../platform/identity.ts';
import { requireId } from '../../../../platform/validate.ts';
import type { QueryResolvers } from '../__generated__/resolvers-types.ts';

export const Query: QueryResolvers = {
  customer: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.customer.load(requireId('id', id)), (c) => c.id),
  contact: (_root, { id }, { loaders }) => loaders.contact.load(requireId('id', id)),
  contract: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.contract.load(requireId('id', id)), (c) => c.customerId),
  serviceSubscription: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.subscription.load(requireId('id', id)), (s) => s.customerId),
  account: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.account.load(requireId('id', id)), (a) => a.customerId),
  opportunity: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.opportunity.load(requireId('id', id)), (o) => o.customerId),
};
