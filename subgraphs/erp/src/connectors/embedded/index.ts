import type { ConnectorTelemetry } from '../../../../../platform/connector-telemetry.ts';
import { createInQuery, placeholders, toDecimal, type SqlValue } from '../../../../../platform/sql.ts';
import type { Database } from '../../../../../platform/sqlite.ts';
import type {
  AssetRecord,
  ErpConnector,
  ErpCustomerRecord,
  ErpInvoiceStatus,
  InvoiceRecord,
  OrderLineRecord,
  OrderRecord,
  OrderStatus,
  ProductRecord,
  ShipmentLineRecord,
  ShipmentRecord,
  WarrantyCoverage,
} from '../types.ts';
import { migrateErp } from './tables.ts';

interface CustomerRow {
  id: string;
  number: string;
  displayName: string;
  currencyCode: string;
  paymentTerms: string | null;
  taxRegistrationNumber: string | null;
  creditLimit: number;
  blocked: string;
  balanceDue: number;
}
interface ItemRow {
  number: string;
  displayName: string;
  description: string | null;
  itemCategoryCode: string | null;
  unitPrice: number;
  itemTrackingCode: string | null;
  warrantyMonths: number | null;
}
interface OrderRow {
  id: string;
  number: string;
  orderDate: string;
  status: string;
  fullyShipped: number;
  anyShipped: number;
  customerNumber: string;
  externalDocumentNumber: string | null;
  requestedDeliveryDate: string | null;
  currencyCode: string;
  totalAmountIncludingTax: number;
}
interface OrderLineRow {
  orderNumber: string;
  sequence: number;
  lineObjectNumber: string | null;
  description: string | null;
  quantity: number;
  unitPrice: number;
  amountExcludingTax: number;
  currencyCode: string;
  shipmentDate: string | null;
}
interface ShipmentRow {
  number: string;
  orderNumber: string;
  customerNumber: string;
  shippingAgentCode: string | null;
  packageTrackingNumber: string | null;
  postingDate: string;
  deliveredDate: string | null;
}
interface ShipmentLineRow {
  documentNo: string;
  sequence: number;
  lineObjectNumber: string;
  quantity: number;
}
interface SerialRow {
  serialNumber: string;
  itemNumber: string;
  customerNumber: string;
  orderNumber: string;
  shipmentNumber: string;
  warrantyStartDate: string;
  warrantyEndDate: string;
  warrantyCode: string;
}
interface InvoiceRow {
  number: string;
  invoiceDate: string;
  dueDate: string;
  customerNumber: string;
  orderNumber: string | null;
  currencyCode: string;
  totalAmountIncludingTax: number;
  remainingAmount: number;
  status: string;
  closedDate: string | null;
}

const ORDER_STATUSES: Record<string, OrderStatus> = { Draft: 'DRAFT', 'In Review': 'IN_REVIEW', Open: 'OPEN' };
const INVOICE_STATUSES: Record<string, ErpInvoiceStatus> = {
  Draft: 'DRAFT',
  'In Review': 'DRAFT',
  Open: 'OPEN',
  Paid: 'PAID',
  Canceled: 'CANCELED',
  Corrective: 'CANCELED',
};
// Each of our states, as the ERP's invoice states that map to it (the inverse of INVOICE_STATUSES).
const ERP_INVOICE_STATUSES: Record<ErpInvoiceStatus, string[]> = {
  DRAFT: ['Draft', 'In Review'],
  OPEN: ['Open'],
  PAID: ['Paid'],
  CANCELED: ['Canceled', 'Corrective'],
};
/** The embedded company keeps its books, and so its item prices, in US dollars. */
const LOCAL_CURRENCY = 'USD';
const COVERAGE: Record<string, WarrantyCoverage> = { STD: 'STANDARD', EXT: 'EXTENDED', PARTS: 'PARTS_ONLY' };

const ORDER_COLUMNS = `o.id, o.number, o.orderDate, o.status, o.fullyShipped,
  EXISTS (SELECT 1 FROM salesOrderLines l WHERE l.documentId = o.id AND l.shippedQuantity > 0) AS anyShipped,
  o.customerNumber, o.externalDocumentNumber, o.requestedDeliveryDate, o.currencyCode, o.totalAmountIncludingTax`;
const INVOICE_COLUMNS = `number, invoiceDate, dueDate, customerNumber, orderNumber, currencyCode, totalAmountIncludingTax,
  remainingAmount, status, closedDate`;
const SHIPMENT_COLUMNS = `number, orderNumber, customerNumber, shippingAgentCode, packageTrackingNumber, postingDate, deliveredDate`;
const SERIAL_COLUMNS = `serialNumber, itemNumber, customerNumber, orderNumber, shipmentNumber, warrantyStartDate,
  warrantyEndDate, warrantyCode`;

/**
 * The ERP adapter over the embedded SQLite ERP (Business Central-shaped tables plus the custom
 * extension for carriers, serial numbers and warranty). One SQL statement is one call.
 */
export function createEmbeddedErpConnector(db: Database, telemetry: ConnectorTelemetry): ErpConnector {
  migrateErp(db);
  const inQuery = createInQuery(db);
  const selectIn = <Row>(operation: string, sql: (list: string) => string, keys: readonly string[], extra: readonly SqlValue[] = []) =>
    telemetry.call(operation, { keys: keys.length }, () => inQuery<Row>(sql, keys, extra));

  return {
    async customersByIds(ids) {
      const rows = await selectIn<CustomerRow>(
        'customersByIds',
        (list) =>
          `SELECT c.id, c.number, c.displayName, c.currencyCode, t.displayName AS paymentTerms, c.taxRegistrationNumber,
             c.creditLimit, c.blocked, c.balanceDue
           FROM customers c LEFT JOIN paymentTerms t ON t.id = c.paymentTermsId WHERE c.number IN (${list})`,
        ids,
      );
      return rows.map(toCustomer);
    },
    async productsBySkus(skus) {
      const rows = await selectIn<ItemRow>(
        'productsBySkus',
        (list) =>
          `SELECT number, displayName, description, itemCategoryCode, unitPrice, itemTrackingCode, warrantyMonths
           FROM items WHERE number IN (${list})`,
        skus,
      );
      return rows.map(toProduct);
    },
    async ordersByNumbers(numbers) {
      const rows = await selectIn<OrderRow>(
        'ordersByNumbers',
        (list) => `SELECT ${ORDER_COLUMNS} FROM salesOrders o WHERE o.number IN (${list})`,
        numbers,
      );
      return rows.map(toOrder);
    },
    async ordersByCustomerIds(customerIds, limit) {
      const rows = await selectIn<OrderRow>(
        'ordersByCustomerIds',
        (list) =>
          `SELECT * FROM (
             SELECT ${ORDER_COLUMNS},
               ROW_NUMBER() OVER (PARTITION BY o.customerNumber ORDER BY o.orderDate DESC, o.number DESC) AS rank
             FROM salesOrders o WHERE o.customerNumber IN (${list})
           ) WHERE rank <= ? ORDER BY orderDate DESC, number DESC`,
        customerIds,
        [limit],
      );
      return rows.map(toOrder);
    },
    async orderLinesByOrderNumbers(numbers) {
      const rows = await selectIn<OrderLineRow>(
        'orderLinesByOrderNumbers',
        (list) =>
          `SELECT o.number AS orderNumber, l.sequence, l.lineObjectNumber, l.description, l.quantity, l.unitPrice,
             l.amountExcludingTax, o.currencyCode, l.shipmentDate
           FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId
           WHERE o.number IN (${list}) ORDER BY o.number, l.sequence`,
        numbers,
      );
      return rows.map(toOrderLine);
    },
    async shipmentsByIds(ids) {
      const rows = await selectIn<ShipmentRow>(
        'shipmentsByIds',
        (list) => `SELECT ${SHIPMENT_COLUMNS} FROM salesShipments WHERE number IN (${list})`,
        ids,
      );
      return rows.map(toShipment);
    },
    async shipmentsByOrderNumbers(numbers) {
      const rows = await selectIn<ShipmentRow>(
        'shipmentsByOrderNumbers',
        (list) => `SELECT ${SHIPMENT_COLUMNS} FROM salesShipments WHERE orderNumber IN (${list}) ORDER BY postingDate, number`,
        numbers,
      );
      return rows.map(toShipment);
    },
    async shipmentLinesByShipmentIds(ids) {
      const rows = await selectIn<ShipmentLineRow>(
        'shipmentLinesByShipmentIds',
        (list) =>
          `SELECT documentNo, sequence, lineObjectNumber, quantity FROM salesShipmentLines
           WHERE documentNo IN (${list}) ORDER BY documentNo, sequence`,
        ids,
      );
      return rows.map((row): ShipmentLineRecord => ({
        shipmentId: row.documentNo,
        sequence: row.sequence,
        sku: row.lineObjectNumber,
        quantity: row.quantity,
      }));
    },
    async assetsBySerialNumbers(serialNumbers) {
      const rows = await selectIn<SerialRow>(
        'assetsBySerialNumbers',
        (list) => `SELECT ${SERIAL_COLUMNS} FROM serialNumbers WHERE serialNumber IN (${list})`,
        serialNumbers,
      );
      return rows.map(toAsset);
    },
    async assetsByShipmentIds(ids) {
      const rows = await selectIn<SerialRow>(
        'assetsByShipmentIds',
        (list) => `SELECT ${SERIAL_COLUMNS} FROM serialNumbers WHERE shipmentNumber IN (${list}) ORDER BY serialNumber`,
        ids,
      );
      return rows.map(toAsset);
    },
    async invoicesByNumbers(numbers) {
      const rows = await selectIn<InvoiceRow>(
        'invoicesByNumbers',
        (list) => `SELECT ${INVOICE_COLUMNS} FROM salesInvoices WHERE number IN (${list})`,
        numbers,
      );
      return rows.map(toInvoice);
    },
    async invoicesByOrderNumbers(numbers) {
      const rows = await selectIn<InvoiceRow>(
        'invoicesByOrderNumbers',
        (list) => `SELECT ${INVOICE_COLUMNS} FROM salesInvoices WHERE orderNumber IN (${list}) ORDER BY invoiceDate, number`,
        numbers,
      );
      return rows.map(toInvoice);
    },
    async invoicesByCustomerIds(customerIds, query) {
      const conditions: string[] = [];
      const extra: SqlValue[] = [];
      if (query.status) {
        const statuses = ERP_INVOICE_STATUSES[query.status];
        conditions.push(`status IN (${placeholders(statuses.length)})`);
        extra.push(...statuses);
      }
      if (query.dueBefore) {
        conditions.push('dueDate < ?');
        extra.push(query.dueBefore);
      }
      if (query.dueOnOrAfter) {
        conditions.push('dueDate >= ?');
        extra.push(query.dueOnOrAfter);
      }
      extra.push(query.limit);
      const where = conditions.map((condition) => ` AND ${condition}`).join('');
      const rows = await selectIn<InvoiceRow>(
        'invoicesByCustomerIds',
        (list) =>
          `SELECT * FROM (
             SELECT ${INVOICE_COLUMNS},
               ROW_NUMBER() OVER (PARTITION BY customerNumber ORDER BY invoiceDate DESC, number DESC) AS rank
             FROM salesInvoices WHERE customerNumber IN (${list})${where}
           ) WHERE rank <= ? ORDER BY invoiceDate DESC, number DESC`,
        customerIds,
        extra,
      );
      return rows.map(toInvoice);
    },
    async ping() {
      await telemetry.call('ping', {}, () => db.prepare('SELECT 1').get());
    },
    async close() {
      db.close();
    },
  };
}

function toCustomer(row: CustomerRow): ErpCustomerRecord {
  return {
    id: row.number,
    erpId: row.id,
    name: row.displayName,
    currency: row.currencyCode,
    paymentTerms: row.paymentTerms,
    taxRegistrationNumber: row.taxRegistrationNumber,
    creditLimit: toDecimal(row.creditLimit),
    // Business Central blocks as ' ' (not blocked), 'Ship', 'Invoice' or 'All'.
    creditHold: row.blocked.trim() !== '',
    balanceDue: toDecimal(row.balanceDue),
  };
}

function toProduct(row: ItemRow): ProductRecord {
  return {
    sku: row.number,
    name: row.displayName,
    description: row.description,
    category: row.itemCategoryCode,
    unitPrice: toDecimal(row.unitPrice),
    currency: LOCAL_CURRENCY,
    serialized: row.itemTrackingCode === 'SN',
    warrantyMonths: row.warrantyMonths,
  };
}

function toOrder(row: OrderRow): OrderRecord {
  const status: OrderStatus = row.fullyShipped ? 'SHIPPED' : row.anyShipped ? 'PARTIALLY_SHIPPED' : (ORDER_STATUSES[row.status] ?? 'OPEN');
  return {
    number: row.number,
    erpId: row.id,
    orderDate: row.orderDate,
    status,
    customerId: row.customerNumber,
    customerPurchaseOrder: row.externalDocumentNumber,
    requestedDeliveryDate: row.requestedDeliveryDate,
    currency: row.currencyCode,
    totalIncludingTax: toDecimal(row.totalAmountIncludingTax),
  };
}

function toOrderLine(row: OrderLineRow): OrderLineRecord {
  return {
    orderNumber: row.orderNumber,
    sequence: row.sequence,
    sku: row.lineObjectNumber,
    description: row.description,
    quantity: row.quantity,
    unitPrice: toDecimal(row.unitPrice),
    amount: toDecimal(row.amountExcludingTax),
    currency: row.currencyCode,
    shipmentDate: row.shipmentDate,
  };
}

function toShipment(row: ShipmentRow): ShipmentRecord {
  return {
    id: row.number,
    orderNumber: row.orderNumber,
    customerId: row.customerNumber,
    carrier: row.shippingAgentCode,
    trackingNumber: row.packageTrackingNumber,
    shippedDate: row.postingDate,
    deliveredDate: row.deliveredDate,
  };
}

function toAsset(row: SerialRow): AssetRecord {
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

function toInvoice(row: InvoiceRow): InvoiceRecord {
  return {
    number: row.number,
    invoiceDate: row.invoiceDate,
    dueDate: row.dueDate,
    customerId: row.customerNumber,
    orderNumber: row.orderNumber,
    currency: row.currencyCode,
    amount: toDecimal(row.totalAmountIncludingTax),
    balance: toDecimal(row.remainingAmount),
    status: INVOICE_STATUSES[row.status] ?? 'OPEN',
    paidDate: row.closedDate,
  };
}
