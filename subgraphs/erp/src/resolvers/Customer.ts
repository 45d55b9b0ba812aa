import { pageSize } from '../../../../platform/paging.ts';
import type { InvoiceListQuery } from '../connectors/types.ts';
import type { CustomerResolvers, InvoiceStatus } from '../__generated__/resolvers-types.ts';

/** The ERP query for an invoice status as clients see it (OVERDUE is OPEN past its due date). */
function invoiceQuery(status: InvoiceStatus | null | undefined, limit: number, today: string): InvoiceListQuery {
  switch (status) {
    case 'OVERDUE':
      return { limit, status: 'OPEN', dueBefore: today };
    case 'OPEN':
      return { limit, status: 'OPEN', dueOnOrAfter: today };
    case null:
    case undefined:
      return { limit };
    default:
      return { limit, status };
  }
}

export const Customer: CustomerResolvers = {
  // ERP fields load the customer record only when one is asked for.
  __resolveReference: ({ id }) => ({ id }),
  billing: (customer, _args, { loaders }) => loaders.customer.load(customer.id),
  async openBalance(customer, _args, { loaders }) {
    const record = await loaders.customer.load(customer.id);
    return record ? { amount: record.balanceDue, currency: record.currency } : null;
  },
  billingSchedules: (customer, _args, { loaders }) => loaders.billingSchedulesByCustomer.load(customer.id),
  orders: (customer, { first }, { loaders }) => loaders.ordersByCustomer.load({ key: customer.id, args: pageSize(first) }),
  invoices: (customer, { status, first }, { loaders, today }) =>
    loaders.invoicesByCustomer.load({ key: customer.id, args: invoiceQuery(status, pageSize(first), today) }),
};

export const BillingProfile = {
  creditLimit: (record: { creditLimit: string; currency: string }) => ({ amount: record.creditLimit, currency: record.currency }),
};
