import { withinScope } from '../../../../platform/identity.ts';
import { requireId } from '../../../../platform/validate.ts';
import type { QueryResolvers } from '../__generated__/resolvers-types.ts';
import { loadAsset } from './Asset.ts';
import { loadOrder } from './Order.ts';

const customerOf = (record: { customerId: string }) => record.customerId;

export const Query: QueryResolvers = {
  order: async (_root, { number }, { loaders, identity }, info) =>
    withinScope(identity, await loadOrder(loaders, requireId('number', number), info), customerOf),
  invoice: async (_root, { number }, { loaders, identity }) =>
    withinScope(identity, await loaders.invoice.load(requireId('number', number)), customerOf),
  product: (_root, { sku }, { loaders }) => loaders.product.load(requireId('sku', sku)),
  asset: async (_root, { serialNumber }, { loaders, identity }, info) =>
    withinScope(identity, await loadAsset(loaders, requireId('serialNumber', serialNumber), info), customerOf),
  shipment: async (_root, { id }, { loaders, identity }) =>
    withinScope(identity, await loaders.shipment.load(requireId('id', id)), customerOf),
};
