import type { GraphQLResolveInfo } from 'graphql';
import { ownOrNull } from '../../../../platform/identity.ts';
import { selectionOf } from '../../../../platform/selection.ts';
import type { OrderParts } from '../connectors/types.ts';
import type { Loaders } from '../loaders.ts';
import type { OrderLineResolvers, OrderResolvers } from '../__generated__/resolvers-types.ts';

/** The parts of an order the query selects beside it. */
export function orderParts(info: GraphQLResolveInfo): OrderParts {
  const selection = selectionOf(info, 'Order');
  return {
    lines: selection.has('lines'),
    products: selection.under('lines').has('product'),
    shipments: selection.has('shipments'),
    invoices: selection.has('invoices'),
  };
}

/**
 * The order, with every part its query selects read in the same trip to the ERP (an order
 * selected alone is read with its siblings' plain order reads).
 */
export function loadOrder(loaders: Loaders, number: string, info: GraphQLResolveInfo) {
  const parts = orderParts(info);
  return parts.lines || parts.products || parts.shipments || parts.invoices
    ? loaders.orderGraph.load({ key: number, args: parts })
    : loaders.order.load(number);
}

export const Order: OrderResolvers = {
  __resolveReference: async ({ number }, { loaders, identity }, info) =>
    ownOrNull(identity, await loadOrder(loaders, number, info), (o) => o.customerId),
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
