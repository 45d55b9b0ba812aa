import type { InvoiceResolvers } from '../__generated__/resolvers-types.ts';

export const Invoice: InvoiceResolvers = {
  __resolveReference: ({ number }, { loaders }) => loaders.invoice.load(number),
  customer: (invoice) => ({ id: invoice.customerId }),
  order: (invoice, _args, { loaders }) => (invoice.orderNumber ? loaders.order.load(invoice.orderNumber) : null),
  amount: (invoice) => ({ amount: invoice.amount, currency: invoice.currency }),
  balance: (invoice) => ({ amount: invoice.balance, currency: invoice.currency }),
  status: (invoice, _args, { today }) => (invoice.status === 'OPEN' && invoice.dueDate < today ? 'OVERDUE' : invoice.status),
};
