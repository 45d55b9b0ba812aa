import { randomUUID } from 'node:crypto';
import type { ConnectorTelemetry } from '../../../../../platform/connector-telemetry.ts';
import { createInQuery, placeholders, toDecimal, type SqlValue } from '../../../../../platform/sql.ts';
import { installChangeLog } from '../../../../../platform/events/sqlite-change-log.ts';
import { probeDatabase, type Database } from '../../../../../platform/sqlite.ts';
import type {
  AssetRecord,
  BillingFrequency,
  BillingScheduleRecord,
  BillingStatus,
  ErpChangedRecord,
  ErpChangedRecordOf,
  ErpChangeKind,
  ErpConnector,
  ErpCustomerRecord,
  ErpInvoiceStatus,
  InvoiceRecord,
  OrderLineRecord,
  OrderRecord,
  OrderStatus,
  ProductRecord,
  ReturnLineRecord,
  ReturnOrderRecord,
  ReturnReason,
  ReturnResolution,
  ReturnStatus,
  ShipmentLineRecord,
  ShipmentRecord,
  WarrantyCoverage,
} from '../types.ts';
import { ERP_CHANGE_TABLES, ERP_SCHEMA, migrateErp } from './tables.ts';
import {
  BC_INVOICE_STATUSES,
  INVOICE_STATUSES,
  ORDER_STATUSES,
  RETURN_STATUSES,
  toAsset,
  type BcSerialNumber as SerialRow,
} from '../vocabulary.ts';
import { composeAssetGraph, composeOrderGraph } from '../graphs.ts';

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
  taxAreaCode: string | null;
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
  shippedQuantity: number;
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
interface ReturnOrderRow {
  number: string;
  externalDocumentNumber: string;
  customerNumber: string;
  caseNumber: string | null;
  resolution: string | null;
  status: string;
  currencyCode: string | null;
  createdDateTime: string;
}
interface ReturnLineRow {
  returnNumber: string;
  sequence: number;
  lineObjectNumber: string;
  quantity: number;
  unitPrice: number | null;
  returnReasonCode: string | null;
  serialNumber: string | null;
  orderNumber: string | null;
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

/** The embedded company keeps its books, and so its item prices, in US dollars. */
const LOCAL_CURRENCY = 'USD';

const RETURN_COLUMNS = `number, externalDocumentNumber, customerNumber, caseNumber, resolution, status, currencyCode, createdDateTime`;
// Whether any line shipped is asked only of orders not fully shipped: a fully shipped one is
// SHIPPED whatever its lines say.
const ORDER_COLUMNS = `o.id, o.number, o.orderDate, o.status, o.fullyShipped,
  CASE WHEN o.fullyShipped THEN 0
    ELSE EXISTS (SELECT 1 FROM salesOrderLines l WHERE l.documentId = o.id AND l.shippedQuantity > 0) END AS anyShipped,
  o.customerNumber, o.externalDocumentNumber, o.requestedDeliveryDate, o.currencyCode, o.totalAmountIncludingTax`;
const INVOICE_COLUMNS = `number, invoiceDate, dueDate, customerNumber, orderNumber, currencyCode, totalAmountIncludingTax,
  remainingAmount, status, closedDate`;
const SHIPMENT_COLUMNS = `number, orderNumber, customerNumber, shippingAgentCode, packageTrackingNumber, postingDate, deliveredDate`;
const CUSTOMER_SELECT = `SELECT c.id, c.number, c.displayName, c.currencyCode, t.displayName AS paymentTerms, c.taxRegistrationNumber,
  c.creditLimit, c.blocked, c.balanceDue, c.taxAreaCode
  FROM customers c LEFT JOIN paymentTerms t ON t.id = c.paymentTermsId`;
const SERIAL_COLUMNS = `serialNumber, itemNumber, customerNumber, orderNumber, shipmentNumber, warrantyStartDate,
  warrantyEndDate, warrantyCode`;

/**
 * The ERP adapter over the embedded SQLite ERP (Business Central-shaped tables plus the custom
 * extension for carriers, serial numbers and warranty). One SQL statement is one call.
 */
export function createEmbeddedErpConnector(db: Database, telemetry: ConnectorTelemetry): ErpConnector {
  migrateErp(db);
  // Every change to the file, whoever makes it, is logged for the ERP's change feed (feed/embedded.ts).
  installChangeLog(db, ERP_CHANGE_TABLES);
  const inQuery = createInQuery(db);
  const selectIn = <Row>(operation: string, sql: (list: string) => string, keys: readonly string[], extra: readonly SqlValue[] = []) =>
    telemetry.call(operation, { keys: keys.length }, () => inQuery<Row>(sql, keys, extra));

  return {
    async customersByIds(ids) {
      const rows = await selectIn<CustomerRow>('customersByIds', (list) => `${CUSTOMER_SELECT} WHERE c.number IN (${list})`, ids);
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
          `SELECT o.number AS orderNumber, l.sequence, l.lineObjectNumber, l.description, l.quantity, l.shippedQuantity, l.unitPrice,
             l.amountExcludingTax, o.currencyCode, l.shipmentDate
           FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId
           WHERE o.number IN (${list}) ORDER BY o.number, l.sequence`,
        numbers,
      );
      return rows.map(toOrderLine);
    },
    // One call to the system (the statements run in-process, one after the other).
    orderGraphsByNumbers(numbers, parts) {
      return composeOrderGraph(this, numbers, parts);
    },
    assetGraphsBySerialNumbers(serialNumbers, parts) {
      return composeAssetGraph(this, serialNumbers, parts);
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
        const statuses = BC_INVOICE_STATUSES[query.status];
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
    async returnOrdersByNumbers(numbers) {
      const rows = await selectIn<ReturnOrderRow>(
        'returnOrdersByNumbers',
        (list) => `SELECT ${RETURN_COLUMNS} FROM salesReturnOrders WHERE number IN (${list})`,
        numbers,
      );
      return rows.map(toReturnOrder);
    },
    async returnOrdersByCaseIds(caseIds) {
      const rows = await selectIn<ReturnOrderRow>(
        'returnOrdersByCaseIds',
        (list) => `SELECT ${RETURN_COLUMNS} FROM salesReturnOrders WHERE caseNumber IN (${list}) ORDER BY createdDateTime, number`,
        caseIds,
      );
      return rows.map(toReturnOrder);
    },
    async returnOrderByExternalDocument(externalDocumentNumber) {
      const row = await telemetry.call('returnOrderByExternalDocument', {}, () =>
        db
          .prepare<[string], ReturnOrderRow>(`SELECT ${RETURN_COLUMNS} FROM salesReturnOrders WHERE externalDocumentNumber = ?`)
          .get(externalDocumentNumber),
      );
      return row ? toReturnOrder(row) : null;
    },
    async returnLinesByReturnNumbers(numbers) {
      const rows = await selectIn<ReturnLineRow>(
        'returnLinesByReturnNumbers',
        (list) =>
          `SELECT r.number AS returnNumber, l.sequence, l.lineObjectNumber, l.quantity, l.unitPrice, l.returnReasonCode, l.serialNumber, l.orderNumber
           FROM salesReturnOrderLines l JOIN salesReturnOrders r ON r.id = l.documentId
           WHERE r.number IN (${list}) ORDER BY r.number, l.sequence`,
        numbers,
      );
      return rows.map((row): ReturnLineRecord => ({
        returnNumber: row.returnNumber,
        sequence: row.sequence,
        sku: row.lineObjectNumber,
        quantity: row.quantity,
        unitPrice: toDecimal(row.unitPrice ?? 0),
        reason: (row.returnReasonCode as ReturnReason | null) ?? 'OTHER',
        serialNumber: row.serialNumber,
        orderNumber: row.orderNumber,
      }));
    },
    async returnedQuantities({ serialNumbers, orderLines }) {
      return telemetry.call('returnedQuantities', { keys: serialNumbers.length + orderLines.length }, () => {
        const bySerialNumber = new Map<string, number>();
        const byOrderLine = new Map<string, number>();
        if (serialNumbers.length) {
          for (const row of inQuery<{ serialNumber: string; quantity: number }>(
            (list) =>
              `SELECT serialNumber, SUM(quantity) AS quantity FROM salesReturnOrderLines WHERE serialNumber IN (${list}) GROUP BY serialNumber`,
            serialNumbers,
          )) {
            bySerialNumber.set(row.serialNumber, row.quantity);
          }
        }
        const orders = [...new Set(orderLines.map((line) => line.orderNumber))];
        if (orders.length) {
          for (const row of inQuery<{ orderNumber: string; orderLineSequence: number; quantity: number }>(
            (list) =>
              // A unit returned by serial number before its line was recorded with it counts on
              // the line that shipped it (the order's first line of that item).
              `SELECT orderNumber, orderLineSequence, SUM(quantity) AS quantity FROM (
                 SELECT r.orderNumber, r.quantity, COALESCE(r.orderLineSequence, (
                   SELECT MIN(l.sequence) FROM serialNumbers s
                   JOIN salesOrders o ON o.number = s.orderNumber
                   JOIN salesOrderLines l ON l.documentId = o.id AND l.lineObjectNumber = s.itemNumber
                   WHERE s.serialNumber = r.serialNumber)) AS orderLineSequence
                 FROM salesReturnOrderLines r WHERE r.orderNumber IN (${list}))
               WHERE orderLineSequence IS NOT NULL GROUP BY orderNumber, orderLineSequence`,
            orders,
          )) {
            byOrderLine.set(`${row.orderNumber}#${row.orderLineSequence}`, row.quantity);
          }
        }
        return { bySerialNumber, byOrderLine };
      });
    },
    async createReturnOrder(order) {
      return telemetry.call('createReturnOrder', { lines: order.lines.length }, () => {
        const existing = db
          .prepare<[string], ReturnOrderRow>(`SELECT ${RETURN_COLUMNS} FROM salesReturnOrders WHERE externalDocumentNumber = ?`)
          .get(order.externalDocumentNumber);
        if (existing) return toReturnOrder(existing);
        const create = db.transaction(() => {
          const next = db.prepare<[], { n: number }>('SELECT COUNT(*) + 1 AS n FROM salesReturnOrders').get()!.n;
          const id = randomUUID();
          const number = `RMA-${String(900000 + next)}`;
          db.prepare(
            `INSERT INTO salesReturnOrders (id, number, customerNumber, externalDocumentNumber, returnReasonCode, status, createdDateTime, caseNumber, resolution, currencyCode)
             VALUES (?, ?, ?, ?, ?, 'Open', ?, ?, ?, ?)`,
          ).run(
            id,
            number,
            order.customerId,
            order.externalDocumentNumber,
            order.lines[0]?.reason ?? 'OTHER',
            new Date().toISOString(),
            order.caseId,
            order.resolution,
            order.currency,
          );
          const insertLine = db.prepare(
            `INSERT INTO salesReturnOrderLines (id, documentId, sequence, lineObjectNumber, quantity, serialNumber, appliesToInvoiceNumber, orderNumber, orderLineSequence, unitPrice, returnReasonCode)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          );
          order.lines.forEach((line, i) =>
            insertLine.run(
              randomUUID(),
              id,
              (i + 1) * 10000,
              line.sku,
              line.quantity,
              line.serialNumber,
              line.appliesToInvoiceNumber,
              line.orderNumber,
              line.orderLineSequence,
              Number(line.unitPrice),
              line.reason,
            ),
          );
          return number;
        });
        const number = create();
        return toReturnOrder(
          db.prepare<[string], ReturnOrderRow>(`SELECT ${RETURN_COLUMNS} FROM salesReturnOrders WHERE number = ?`).get(number)!,
        );
      });
    },
    async customersByTaxRegistrationNumbers(taxIds) {
      const normalized = [...new Set(taxIds.map((id) => id.replace(/\s+/g, '').toUpperCase()))];
      const rows = await selectIn<CustomerRow>(
        'customersByTaxRegistrationNumbers',
        (list) => `${CUSTOMER_SELECT} WHERE UPPER(REPLACE(c.taxRegistrationNumber, ' ', '')) IN (${list})`,
        normalized,
      );
      return rows.map(toCustomer);
    },
    async customersByNameAndPostalCode(name, postalCode) {
      const rows = await telemetry.call('customersByNameAndPostalCode', {}, () =>
        db
          .prepare<[string, string], CustomerRow>(
            `${CUSTOMER_SELECT} WHERE UPPER(c.displayName) = UPPER(?) AND UPPER(c.postalCode) = UPPER(?)`,
          )
          .all(name.trim(), postalCode.trim()),
      );
      return rows.map(toCustomer);
    },
    async customerByReference(reference) {
      const row = await telemetry.call('customerByReference', {}, () =>
        db.prepare<[string], CustomerRow>(`${CUSTOMER_SELECT} WHERE c.crmReference = ?`).get(reference),
      );
      return row ? toCustomer(row) : null;
    },
    async createCustomer(customer) {
      return telemetry.call('createCustomer', {}, () => {
        const byReference = db.prepare<[string], CustomerRow>(`${CUSTOMER_SELECT} WHERE c.crmReference = ?`);
        const existing = byReference.get(customer.reference);
        if (existing) return toCustomer(existing);
        db.transaction(() => {
          const terms = db.prepare<[string], { id: string }>('SELECT id FROM paymentTerms WHERE code = ?').get(customer.paymentTermsCode);
          // The next number of the customer series (C10001, C10002, …), never one reused.
          const next = db
            .prepare<[], { n: number }>(
              `SELECT COALESCE(MAX(CAST(SUBSTR(number, 2) AS INTEGER)), 10000) + 1 AS n FROM customers WHERE number GLOB 'C[0-9]*'`,
            )
            .get()!.n;
          const a = customer.address;
          db.prepare(
            `INSERT INTO customers (id, number, displayName, email, phoneNumber, addressLine1, city, state, country, postalCode, currencyCode,
               paymentTermsId, taxRegistrationNumber, creditLimit, blocked, balanceDue, lastModifiedDateTime, taxAreaCode, crmReference)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ' ', 0, ?, ?, ?)`,
          ).run(
            randomUUID(),
            `C${next}`,
            customer.name,
            customer.email,
            customer.phone,
            a.street,
            a.city,
            a.state,
            a.country,
            a.postalCode,
            customer.currency,
            terms?.id ?? null,
            customer.taxRegistrationNumber,
            new Date().toISOString(),
            customer.taxArea,
            customer.reference,
          );
        })();
        return toCustomer(byReference.get(customer.reference)!);
      });
    },
    async blockCustomer(number) {
      const changed = await telemetry.call(
        'blockCustomer',
        {},
        () =>
          db
            .prepare(`UPDATE customers SET blocked = 'All', lastModifiedDateTime = ? WHERE number = ?`)
            .run(new Date().toISOString(), number).changes,
      );
      return changed > 0;
    },
    async billingSchedulesBySubscriptionIds(ids) {
      const rows = await selectIn<ScheduleRow>(
        'billingSchedulesBySubscriptionIds',
        (list) => `SELECT * FROM subscriptionBillingSchedules WHERE subscriptionId IN (${list})`,
        ids,
      );
      return rows.map(toSchedule);
    },
    async billingSchedulesByCustomerIds(customerIds) {
      const rows = await selectIn<ScheduleRow>(
        'billingSchedulesByCustomerIds',
        (list) =>
          `SELECT * FROM subscriptionBillingSchedules WHERE customerNumber IN (${list}) ORDER BY customerNumber, startDate, subscriptionId`,
        customerIds,
      );
      return rows.map(toSchedule);
    },
    async applyBillingChange(change) {
      const apply = db.transaction((): ScheduleRow => {
        const bySubscription = db.prepare<[string], ScheduleRow>('SELECT * FROM subscriptionBillingSchedules WHERE subscriptionId = ?');
        const current = bySubscription.get(change.subscriptionId);
        if (db.prepare('SELECT 1 FROM subscriptionBillingChanges WHERE changeKey = ?').get(change.key) && current) return current;
        const version = (current?.version ?? 0) + 1;
        const now = new Date().toISOString();
        const nextInvoiceDate = change.status === 'ACTIVE' ? (current?.nextInvoiceDate ?? change.startDate) : null;
        db.prepare(
          `INSERT INTO subscriptionBillingSchedules (subscriptionId, customerNumber, itemNumber, quantity, unitPrice, billingPeriod, status,
             startDate, endDate, nextInvoiceDate, version, currencyCode, lastModifiedDateTime)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (subscriptionId) DO UPDATE SET
             itemNumber = excluded.itemNumber, quantity = excluded.quantity, unitPrice = excluded.unitPrice,
             billingPeriod = excluded.billingPeriod, status = excluded.status, startDate = excluded.startDate, endDate = excluded.endDate,
             nextInvoiceDate = excluded.nextInvoiceDate, version = excluded.version, currencyCode = excluded.currencyCode,
             lastModifiedDateTime = excluded.lastModifiedDateTime`,
        ).run(
          change.subscriptionId,
          change.customerId,
          change.sku,
          change.quantity,
          Number(change.unitPrice),
          BILLING_PERIOD[change.frequency],
          BILLING_STATUS[change.status],
          change.startDate,
          change.endDate,
          nextInvoiceDate,
          version,
          change.currency,
          now,
        );
        db.prepare('INSERT INTO subscriptionBillingChanges (changeKey, subscriptionId, version, appliedDateTime) VALUES (?, ?, ?, ?)').run(
          change.key,
          change.subscriptionId,
          version,
          now,
        );
        return bySubscription.get(change.subscriptionId)!;
      });
      return toSchedule(await telemetry.call('applyBillingChange', {}, () => apply.immediate()));
    },
    async availableQuantities(skus) {
      const rows = await selectIn<{ number: string; inventory: number }>(
        'availableQuantities',
        (list) => `SELECT number, inventory FROM items WHERE number IN (${list})`,
        skus,
      );
      return new Map(rows.map((row) => [row.number, row.inventory]));
    },
    async salesOrderByExternalDocument(externalDocumentNumber) {
      const row = await telemetry.call('salesOrderByExternalDocument', {}, () =>
        db
          .prepare<[string], OrderRow>(`SELECT ${ORDER_COLUMNS} FROM salesOrders o WHERE o.externalDocumentNumber = ?`)
          .get(externalDocumentNumber),
      );
      return row ? toOrder(row) : null;
    },
    async createSalesOrder(order) {
      return telemetry.call('createSalesOrder', { lines: order.lines.length }, () => {
        const byDocument = db.prepare<[string], OrderRow>(`SELECT ${ORDER_COLUMNS} FROM salesOrders o WHERE o.externalDocumentNumber = ?`);
        const existing = byDocument.get(order.externalDocumentNumber);
        if (existing) return toOrder(existing);
        db.transaction(() => {
          const customer = db
            .prepare<[string], { id: string; displayName: string }>('SELECT id, displayName FROM customers WHERE number = ?')
            .get(order.customerId);
          if (!customer) throw new Error(`no customer ${order.customerId}`);
          // The next number of the series, never one reused (a cancelled order's number stays used).
          const next = db
            .prepare<[], { n: number }>(
              `SELECT COALESCE(MAX(CAST(SUBSTR(number, 4) AS INTEGER)), 200000) - 199999 AS n FROM salesOrders WHERE number LIKE 'SO-2%'`,
            )
            .get()!.n;
          const id = randomUUID();
          const now = new Date().toISOString();
          const total = order.lines.reduce((sum, line) => sum + Math.round(Number(line.unitPrice) * 100) * line.quantity, 0) / 100;
          db.prepare(
            `INSERT INTO salesOrders (id, number, externalDocumentNumber, orderDate, customerId, customerNumber, customerName, currencyCode,
               requestedDeliveryDate, totalAmountExcludingTax, totalTaxAmount, totalAmountIncludingTax, fullyShipped, status, lastModifiedDateTime)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, 'Open', ?)`,
          ).run(
            id,
            `SO-${200000 + next}`,
            order.externalDocumentNumber,
            now.slice(0, 10),
            customer.id,
            order.customerId,
            customer.displayName,
            order.currency,
            order.requestedDeliveryDate,
            total,
            total,
            now,
          );
          const insertLine = db.prepare(
            `INSERT INTO salesOrderLines (id, documentId, sequence, lineType, lineObjectNumber, description, quantity, unitPrice, amountExcludingTax)
             VALUES (?, ?, ?, 'Item', ?, ?, ?, ?, ?)`,
          );
          order.lines.forEach((line, i) =>
            insertLine.run(
              randomUUID(),
              id,
              (i + 1) * 10000,
              line.sku,
              line.description,
              line.quantity,
              Number(line.unitPrice),
              (Math.round(Number(line.unitPrice) * 100) * line.quantity) / 100,
            ),
          );
        })();
        return toOrder(byDocument.get(order.externalDocumentNumber)!);
      });
    },
    async cancelSalesOrder(number) {
      return telemetry.call('cancelSalesOrder', {}, () =>
        db.transaction(() => {
          const order = db.prepare<[string], { id: string }>('SELECT id FROM salesOrders WHERE number = ?').get(number);
          if (!order) return 'not_found' as const;
          const shipped = db
            .prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM salesOrderLines WHERE documentId = ? AND shippedQuantity > 0')
            .get(order.id)!.n;
          if (shipped > 0) return 'shipped' as const;
          db.prepare('DELETE FROM salesOrderLines WHERE documentId = ?').run(order.id);
          db.prepare('DELETE FROM salesOrders WHERE id = ?').run(order.id);
          return 'cancelled' as const;
        })(),
      );
    },
    async changedRecordsByErpIds<K extends ErpChangeKind>(kind: K, ids: readonly string[]) {
      const read = CHANGED_READS[kind];
      const rows = await selectIn<ChangedRow>(`changedRecordsByErpIds`, (list) => `${read.select} WHERE ${read.id} IN (${list})`, ids);
      return rows.map((row) => toChanged(kind, row) as ErpChangedRecordOf<K>);
    },
    async changedRecordsAfter<K extends ErpChangeKind>(kind: K, after: string) {
      const read = CHANGED_READS[kind];
      const rows = await telemetry.call('changedRecordsAfter', {}, () =>
        db
          .prepare<[string], ChangedRow>(
            `${read.select} WHERE julianday(${read.modified}) > julianday(?) ORDER BY julianday(${read.modified}), ${read.id}`,
          )
          .all(after),
      );
      return rows.map((row) => toChanged(kind, row) as ErpChangedRecordOf<K>);
    },
    async ping() {
      await telemetry.call('ping', {}, () => probeDatabase(db, ERP_SCHEMA.rowsIn));
    },
    async close() {
      db.close();
    },
  };
}

// Posted shipments and invoices carry no modification time where no writer set one (the seed
// sets none): their posting date stands for it.
const POSTED_MODIFIED = `COALESCE(lastModifiedDateTime, postingDate || 'T00:00:00Z')`;

/** What the change feed reads of each kind: the record as the port maps it, and when it last changed (`changedAt`). */
const CHANGED_READS: Readonly<Record<ErpChangeKind, { select: string; id: string; modified: string }>> = {
  customer: {
    select: `SELECT c.id, c.number, c.displayName, c.currencyCode, t.displayName AS paymentTerms, c.taxRegistrationNumber,
      c.creditLimit, c.blocked, c.balanceDue, c.taxAreaCode, c.lastModifiedDateTime AS changedAt
      FROM customers c LEFT JOIN paymentTerms t ON t.id = c.paymentTermsId`,
    id: 'c.id',
    modified: 'c.lastModifiedDateTime',
  },
  order: {
    select: `SELECT ${ORDER_COLUMNS}, o.lastModifiedDateTime AS changedAt FROM salesOrders o`,
    id: 'o.id',
    modified: 'o.lastModifiedDateTime',
  },
  shipment: {
    select: `SELECT id, ${SHIPMENT_COLUMNS}, ${POSTED_MODIFIED} AS changedAt FROM salesShipments`,
    id: 'id',
    modified: POSTED_MODIFIED,
  },
  invoice: {
    select: `SELECT id, ${INVOICE_COLUMNS}, ${POSTED_MODIFIED} AS changedAt FROM salesInvoices`,
    id: 'id',
    modified: POSTED_MODIFIED,
  },
};

type ChangedRow = (CustomerRow | OrderRow | (ShipmentRow & { id: string }) | (InvoiceRow & { id: string })) & { changedAt: string | null };

function toChanged(kind: ErpChangeKind, row: ChangedRow): ErpChangedRecord {
  const common = { erpId: row.id, lastModified: row.changedAt };
  switch (kind) {
    case 'customer':
      return { ...common, kind, record: toCustomer(row as CustomerRow) };
    case 'order':
      return { ...common, kind, record: toOrder(row as OrderRow) };
    case 'shipment':
      return { ...common, kind, record: toShipment(row as ShipmentRow) };
    case 'invoice':
      return { ...common, kind, record: toInvoice(row as InvoiceRow) };
  }
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
    taxArea: row.taxAreaCode,
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
    shippedQuantity: row.shippedQuantity,
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

function toReturnOrder(row: ReturnOrderRow): ReturnOrderRecord {
  return {
    number: row.number,
    externalDocumentNumber: row.externalDocumentNumber,
    customerId: row.customerNumber,
    caseId: row.caseNumber,
    resolution: (row.resolution as ReturnResolution | null) ?? 'REPLACE',
    status: RETURN_STATUSES[row.status] ?? 'AUTHORIZED',
    currency: row.currencyCode ?? LOCAL_CURRENCY,
    createdAt: row.createdDateTime,
  };
}

interface ScheduleRow {
  subscriptionId: string;
  customerNumber: string;
  itemNumber: string;
  quantity: number;
  unitPrice: number;
  billingPeriod: string;
  status: string;
  startDate: string;
  endDate: string | null;
  nextInvoiceDate: string | null;
  version: number;
  currencyCode: string;
}

/** The extension's values for a schedule's period and status. */
const BILLING_PERIOD: Readonly<Record<BillingFrequency, string>> = { MONTHLY: 'Monthly', ANNUAL: 'Annual' };
const BILLING_STATUS: Readonly<Record<BillingStatus, string>> = { ACTIVE: 'Active', SUSPENDED: 'Suspended' };

function toSchedule(row: ScheduleRow): BillingScheduleRecord {
  return {
    subscriptionId: row.subscriptionId,
    customerId: row.customerNumber,
    sku: row.itemNumber,
    quantity: row.quantity,
    unitPrice: toDecimal(row.unitPrice),
    frequency: row.billingPeriod === 'Annual' ? 'ANNUAL' : 'MONTHLY',
    status: row.status === 'Suspended' ? 'SUSPENDED' : 'ACTIVE',
    startDate: row.startDate,
    endDate: row.endDate,
    nextInvoiceDate: row.nextInvoiceDate,
    version: row.version,
    currency: row.currencyCode,
  };
}
