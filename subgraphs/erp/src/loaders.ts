import DataLoader from 'dataloader';
import { listLoader, listLoaderWithArgs, recordLoader } from '../../../platform/loaders.ts';
import type { AssetParts, AssetRecord, ErpConnector, InvoiceListQuery, OrderParts, OrderRecord } from './connectors/types.ts';

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
  const orderGraph = groupedLoader<OrderParts, OrderRecord>(async (numbers, parts) => {
    const graph = await erp.orderGraphsByNumbers(numbers, parts);
    for (const order of graph.orders) loaders.order.prime(order.number, order);
    for (const product of graph.products) loaders.product.prime(product.sku, product);
    if (parts.lines || parts.products) primeLists(loaders.orderLines, numbers, graph.lines, (line) => line.orderNumber);
    if (parts.shipments) primeLists(loaders.shipmentsByOrder, numbers, graph.shipments, (shipment) => shipment.orderNumber);
    if (parts.invoices) primeLists(loaders.invoicesByOrder, numbers, graph.invoices, (invoice) => invoice.orderNumber ?? '');
    return new Map(graph.orders.map((order) => [order.number, order]));
  });

  /** An asset with its product when selected, in one port call, the loaders primed. */
  const assetGraph = groupedLoader<AssetParts, AssetRecord>(async (serialNumbers, parts) => {
    const graph = await erp.assetGraphsBySerialNumbers(serialNumbers, parts);
    for (const asset of graph.assets) loaders.asset.prime(asset.serialNumber, asset);
    for (const product of graph.products) loaders.product.prime(product.sku, product);
    return new Map(graph.assets.map((asset) => [asset.serialNumber, asset]));
  });

  return { ...loaders, orderGraph, assetGraph };
}

/**
 * A loader of one record per key whose keys carry the parts to read with it: keys asking for
 * the same parts share one call.
 */
function groupedLoader<A, V>(fetch: (keys: string[], args: A) => Promise<Map<string, V>>) {
  const keyOf = ({ key, args }: { key: string; args: A }) => `${JSON.stringify(args)}\u0000${key}`;
  return new DataLoader<{ key: string; args: A }, V | null, string>(
    async (requests) => {
      const groups = new Map<string, { args: A; keys: string[] }>();
      for (const { key, args } of requests) {
        const id = JSON.stringify(args);
        const group = groups.get(id) ?? { args, keys: [] };
        group.keys.push(key);
        groups.set(id, group);
      }
      const found = new Map<string, V | null>();
      await Promise.all(
        [...groups].map(async ([id, { args, keys }]) => {
          const records = await fetch([...new Set(keys)], args);
          for (const key of keys) found.set(`${id}\u0000${key}`, records.get(key) ?? null);
        }),
      );
      return requests.map((request) => found.get(keyOf(request)) ?? null);
    },
    { cacheKeyFn: keyOf },
  );
}

export type Loaders = ReturnType<typeof createLoaders>;
