import type { AssetRecord, ErpInvoiceStatus, OrderStatus, ReturnStatus, WarrantyCoverage } from './types.ts';

// Business Central's values and ours, for every adapter that reads BC-shaped records (the
// embedded ERP keeps BC's values too).

export const ORDER_STATUSES: Readonly<Record<string, OrderStatus>> = { Draft: 'DRAFT', 'In Review': 'IN_REVIEW', Open: 'OPEN' };

export const INVOICE_STATUSES: Readonly<Record<string, ErpInvoiceStatus>> = {
  Draft: 'DRAFT',
  'In Review': 'DRAFT',
  Open: 'OPEN',
  Paid: 'PAID',
  Canceled: 'CANCELED',
  Corrective: 'CANCELED',
};

/** Each of our invoice states as the Business Central states that map to it (the inverse of INVOICE_STATUSES). */
export const BC_INVOICE_STATUSES: Readonly<Record<ErpInvoiceStatus, readonly string[]>> = {
  DRAFT: ['Draft', 'In Review'],
  OPEN: ['Open'],
  PAID: ['Paid'],
  CANCELED: ['Canceled', 'Corrective'],
};

/** Warranty codes of the serial numbers extension. */
export const COVERAGE: Readonly<Record<string, WarrantyCoverage>> = { STD: 'STANDARD', EXT: 'EXTENDED', PARTS: 'PARTS_ONLY' };

/** Return orders are Open until released and received; closed once posted. */
export const RETURN_STATUSES: Readonly<Record<string, ReturnStatus>> = { Open: 'AUTHORIZED', Released: 'RECEIVED', Posted: 'CLOSED' };

/** A serial number as the extension page shapes it (the embedded ERP keeps the same shape). */
export interface BcSerialNumber {
  serialNumber: string;
  itemNumber: string;
  customerNumber: string;
  orderNumber: string;
  shipmentNumber: string;
  warrantyStartDate: string;
  warrantyEndDate: string;
  warrantyCode: string;
}

export function toAsset(row: BcSerialNumber): AssetRecord {
  return {
    serialNumber: row.serialNumber,
    sku: row.itemNumber,
    customerId: row.customerNumber,
    orderNumber: row.orderNumber,
    shipmentId: row.shipmentNumber,
    warrantyStartDate: row.warrantyStartDate,
    warrantyEndDate: row.warrantyEndDate,
    warrantyCoverage: COVERAGE[row.warrantyCode] ?? 'STANDARD',
  };
}
