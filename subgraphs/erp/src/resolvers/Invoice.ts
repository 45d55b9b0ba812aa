import { ownOrNull } from '../../../../platform/identity.ts';
import type { InvoiceResolvers } from '../__generated__/resolvers-types.ts';

export const Invoice: InvoiceResolvers = {
  __resolveReference: async ({ number }, { loaders, identity }) =>
    ownOrNull(identity, await loaders.invoice.load(number), (i) => i.customerId),
  customer: (invoice) => ({ id: invoice.customerId }),
  order: (invoice, _args, { loaders }) => (invoice.orderNumber ? loaders.order.load(invoice.orderNumber) : null),
  amount: (invoice) => ({ amount: invoice.amount, currency: invoice.currency }),
  balance: (invoice) => ({ amount: invoice.balance, currency: invoice.currency }),
  status: (invoice, _args, { today }) => (invoice.status === 'OPEN' && invoice.dueDate < today ? 'OVERDUE' : invoice.status),
};
