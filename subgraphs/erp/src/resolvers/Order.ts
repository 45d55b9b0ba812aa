import { ownOrNull } from '../../../../platform/identity.ts';
import type { OrderLineResolvers, OrderResolvers } from '../__generated__/resolvers-types.ts';

export const Order: OrderResolvers = {
  __resolveReference: async ({ number }, { loaders, identity }) =>
    ownOrNull(identity, await loaders.order.load(number), (o) => o.customerId),
  customer: (order) => ({ id: order.customerId }),
  lines: (order, _args, { loaders }) => loaders.orderLines.load(order.number),
  total: (order) => ({ amount: order.totalIncludingTax, currency: order.currency }),
  shipments: (order, _args, { loaders }) => loaders.shipmentsByOrder.load(order.number),
  invoices: (order, _args, { loaders }) => loaders.invoicesByOrder.load(order.number),
};

export const OrderLine: OrderLineResolvers = {
  product: (line, _args, { loaders }) => (line.sku ? loaders.product.load(line.sku) : null),
  unitPrice: (line) => ({ amount: line.unitPrice, currency: line.currency }),
  amount: (line) => ({ amount: line.amount, currency: line.currency }),
};
