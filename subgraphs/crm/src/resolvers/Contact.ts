import { ownOrNull } from '../../../../platform/identity.ts';
import type { ContactResolvers } from '../__generated__/resolvers-types.ts';

export const Contact: ContactResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.contact.load(id), (c) => c.customerId),
  name: (contact) => [contact.firstName, contact.lastName].filter(Boolean).join(' '),
  customer: (contact, _args, { loaders }) => (contact.customerId ? loaders.customer.load(contact.customerId) : null),
};
