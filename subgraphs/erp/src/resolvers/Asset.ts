import type { GraphQLResolveInfo } from 'graphql';
import { ownOrNull } from '../../../../platform/identity.ts';
import { selectionOf } from '../../../../platform/selection.ts';
import type { Loaders } from '../loaders.ts';
import { daysBetween } from '../../../../platform/time.ts';
import type { AssetResolvers, WarrantyResolvers } from '../__generated__/resolvers-types.ts';

/** The asset, with its product read in the same trip when the query selects it. */
export function loadAsset(loaders: Loaders, serialNumber: string, info: GraphQLResolveInfo) {
  return selectionOf(info, 'Asset').has('product')
    ? loaders.assetGraph.load({ key: serialNumber, args: { products: true } })
    : loaders.asset.load(serialNumber);
}

export const Asset: AssetResolvers = {
  __resolveReference: async ({ serialNumber }, { loaders, identity }, info) =>
    ownOrNull(identity, await loadAsset(loaders, serialNumber, info), (a) => a.customerId),
  product: (asset, _args, { loaders }) => loaders.product.load(asset.sku),
  customer: (asset) => ({ id: asset.customerId }),
  order: (asset, _args, { loaders }) => loaders.order.load(asset.orderNumber),
  shipment: (asset, _args, { loaders }) => loaders.shipment.load(asset.shipmentId),
  warranty: (asset) => asset,
};

/** A warranty is read off the asset's record; its status depends on today's date. */
export const Warranty: WarrantyResolvers = {
  status: (asset, _args, { today }) => (asset.warrantyEndDate >= today ? 'ACTIVE' : 'EXPIRED'),
  startDate: (asset) => asset.warrantyStartDate,
  endDate: (asset) => asset.warrantyEndDate,
  coverage: (asset) => asset.warrantyCoverage,
  daysRemaining: (asset, _args, { today }) => Math.max(0, daysBetween(today, asset.warrantyEndDate)),
};
