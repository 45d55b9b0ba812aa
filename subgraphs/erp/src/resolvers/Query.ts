import { withinScope } from '../../../../platform/identity.ts';
import { requireId } from '../../../../platform/validate.ts';
import type { QueryResolvers } from '../__generated__/resolvers-types.ts';

const customerOf = (record: { customerId: string }) => record.customerId;

export const Query: QueryResolvers = {
  order: async (_root, { number }, { loaders, identity }) =>
    withinScope(identity, await loaders.order.load(requireId('number', number)), customerOf),
  invoice: async (_root, { number }, { loaders, identity }) =>
    withinScope(identity, await loaders.invoice.load(requireId('number', number)), customerOf),
  product: (_root, { sku }, { loaders }) => loaders.product.load(requireId('sku', sku)),
  asset: async (_root, { serialNumber }, { loaders, identity }) =>
    withinScope(identity, await loaders.asset.load(requireId('serialNumber', serialNumber)), customerOf),
  shipment: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.shipment.load(requireId('id', id)), customerOf),
};
