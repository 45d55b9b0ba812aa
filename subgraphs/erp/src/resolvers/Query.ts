import { requireId } from '../../../../platform/validate.ts';
import type { QueryResolvers } from '../__generated__/resolvers-types.ts';

export const Query: QueryResolvers = {
  order: (_root, { number }, { loaders }) => loaders.order.load(requireId('number', number)),
  invoice: (_root, { number }, { loaders }) => loaders.invoice.load(requireId('number', number)),
  product: (_root, { sku }, { loaders }) => loaders.product.load(requireId('sku', sku)),
  asset: (_root, { serialNumber }, { loaders }) => loaders.asset.load(requireId('serialNumber', serialNumber)),
  shipment: (_root, { id }, { loaders }) => loaders.shipment.load(requireId('id', id)),
};
