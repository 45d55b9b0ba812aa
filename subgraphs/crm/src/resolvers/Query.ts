import { requireId } from '../../../../platform/validate.ts';
import type { QueryResolvers } from '../__generated__/resolvers-types.ts';

export const Query: QueryResolvers = {
  customer: (_root, { id }, { loaders }) => loaders.customer.load(requireId('id', id)),
  contact: (_root, { id }, { loaders }) => loaders.contact.load(requireId('id', id)),
  contract: (_root, { id }, { loaders }) => loaders.contract.load(requireId('id', id)),
};
