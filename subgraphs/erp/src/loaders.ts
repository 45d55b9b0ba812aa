import { listLoader, listLoaderWithArgs, recordLoader } from '../../../platform/loaders.ts';
import type { ErpConnector, InvoiceListQuery } from './connectors/types.ts';

/** One DataLoader per entity and list edge; a new set per request. */
export function createLoaders(erp: ErpConnector) {
  return {
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
}

export type Loaders = ReturnType<typeof createLoaders>;
