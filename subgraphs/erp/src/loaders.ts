import DataLoader from 'dataloader';
import { listLoader, listLoaderWithArgs, recordLoader, recordLoaderWithArgs } from '../../../platform/loaders.ts';
import type { AssetParts, ErpConnector, InvoiceListQuery, OrderParts } from './connectors/types.ts';

/** One DataLoader per entity and list edge; a new set per request. */
export function createLoaders(erp: ErpConnector) {
  const loaders = {
    customer: recordLoader(
      (ids: readonly string[]) => erp.customersByIds(ids),
      (record) => record.id,
    ),
    product: recordLoader(
      (skus: readonly string[]) => erp.productsBySkus(skus),
      (record) => record.sku,
    ),
    order: recordLoader(
      (numbers: readonly string[]) => erp.ordersByNumbers(numbers),
      (record) => record.number,
    ),
    shipment: recordLoader(
      (ids: readonly string[]) => erp.shipmentsByIds(ids),
      (record) => record.id,
    ),
    asset: recordLoader(
      (serials: readonly string[]) => erp.assetsBySerialNumbers(serials),
      (record) => record.serialNumber,
    ),
    invoice: recordLoader(
      (numbers: readonly string[]) => erp.invoicesByNumbers(numbers),
      (record) => record.number,
    ),
    ordersByCustomer: listLoaderWithArgs(
      (ids: readonly string[], limit: number) => erp.ordersByCustomerIds(ids, limit),
      (record) => record.customerId,
    ),
    invoicesByCustomer: listLoaderWithArgs(
      (ids: readonly string[], query: InvoiceListQuery) => erp.invoicesByCustomerIds(ids, query),
      (record) => record.customerId,
    ),
    billingSchedulesByCustomer: listLoader(
      (ids: readonly string[]) => erp.billingSchedulesByCustomerIds(ids),
      (record) => record.customerId,
    ),
    orderLines: listLoader(
      (numbers: readonly string[]) => erp.orderLinesByOrderNumbers(numbers),
      (record) => record.orderNumber,
    ),
    shipmentsByOrder: listLoader(
      (numbers: readonly string[]) => erp.shipmentsByOrderNumbers(numbers),
      (record) => record.orderNumber,
    ),
    shipmentLines: listLoader(
      (ids: readonly string[]) => erp.shipmentLinesByShipmentIds(ids),
      (record) => record.shipmentId,
    ),
    assetsByShipment: listLoader(
      (ids: readonly string[]) => erp.assetsByShipmentIds(ids),
      (record) => record.shipmentId,
    ),
    returnOrder: recordLoader(
      (numbers: readonly string[]) => erp.returnOrdersByNumbers(numbers),
      (record) => record.number,
    ),
    returnLines: listLoader(
      (numbers: readonly string[]) => erp.returnLinesByReturnNumbers(numbers),
      (record) => record.returnNumber,
    ),
    returnsByCase: listLoader(
      (ids: readonly string[]) => erp.returnOrdersByCaseIds(ids),
      (record) => record.caseId ?? '',
    ),
    invoicesByOrder: listLoader(
      (numbers: readonly string[]) => erp.invoicesByOrderNumbers(numbers),
      (record) => record.orderNumber ?? '',
    ),
  };

  /** Primes a list loader with each key's records, keys with none included (they have none). */
  const primeLists = <V>(loader: DataLoader<string, V[]>, keys: readonly string[], records: readonly V[], keyOf: (record: V) => string) => {
    const groups = new Map<string, V[]>(keys.map((key) => [key, []]));
    for (const record of records) groups.get(keyOf(record))?.push(record);
    for (const [key, list] of groups) loader.prime(key, list);
  };

  /**
   * An order with the parts its query selects, read in one port call, the part loaders primed
   * with what it returned: its fields then resolve from the loaders without another trip.
   */
  const orderGraph = recordLoaderWithArgs(
    async (numbers: readonly string[], parts: OrderParts) => {
      const graph = await erp.orderGraphsByNumbers(numbers, parts);
      for (const order of graph.orders) loaders.order.prime(order.number, order);
      for (const product of graph.products) loaders.product.prime(product.sku, product);
      if (parts.lines || parts.products) primeLists(loaders.orderLines, numbers, graph.lines, (line) => line.orderNumber);
      if (parts.shipments) primeLists(loaders.shipmentsByOrder, numbers, graph.shipments, (shipment) => shipment.orderNumber);
      if (parts.invoices) primeLists(loaders.invoicesByOrder, numbers, graph.invoices, (invoice) => invoice.orderNumber ?? '');
      return graph.orders;
    },
    (order) => order.number,
  );

  /** An asset with its product when selected, in one port call, the loaders primed. */
  const assetGraph = recordLoaderWithArgs(
    async (serialNumbers: readonly string[], parts: AssetParts) => {
      const graph = await erp.assetGraphsBySerialNumbers(serialNumbers, parts);
      for (const asset of graph.assets) loaders.asset.prime(asset.serialNumber, asset);
      for (const product of graph.products) loaders.product.prime(product.sku, product);
      return graph.assets;
    },
    (asset) => asset.serialNumber,
  );

  return { ...loaders, orderGraph, assetGraph };
}

export type Loaders = ReturnType<typeof createLoaders>;
