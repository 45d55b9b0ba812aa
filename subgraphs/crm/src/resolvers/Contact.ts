import type { ContactResolvers } from '../__generated__/resolvers-types.ts';

export const Contact: ContactResolvers = {
  __resolveReference: ({ id }, { loaders }) => loaders.contact.load(id),
  name: (contact) => [contact.firstName, contact.lastName].filter(Boolean).join(' '),
  customer: (contact, _args, { loaders }) => (contact.customerId ? loaders.customer.load(contact.customerId) : null),
};
