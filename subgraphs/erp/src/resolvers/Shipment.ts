import { ownOrNull } from '../../../../platform/identity.ts';
import type { ShipmentLineResolvers, ShipmentResolvers } from '../__generated__/resolvers-types.ts';

export const Shipment: ShipmentResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.shipment.load(id), (s) => s.customerId),
  order: (shipment, _args, { loaders }) => loaders.order.load(shipment.orderNumber),
  status: (shipment) => (shipment.deliveredDate ? 'DELIVERED' : 'IN_TRANSIT'),
  lines: (shipment, _args, { loaders }) => loaders.shipmentLines.load(shipment.id),
  assets: (shipment, _args, { loaders }) => loaders.assetsByShipment.load(shipment.id),
};

export const ShipmentLine: ShipmentLineResolvers = {
  product: (line, _args, { loaders }) => loaders.product.load(line.sku),
};
