import type { Database } from '../../platform/sqlite.ts';
import { nextMonthStart, PLANS, subscriptionsOf } from './subscriptions.ts';
import type { World } from './world.ts';

/** Child tables first, so clearing respects the foreign keys. */
const ERP_TABLES = [
  'subscriptionBillingChanges',
  'subscriptionBillingSchedules',
  'salesReturnOrderLines',
  'salesReturnOrders',
  'salesInvoices',
  'serialNumbers',
  'salesShipmentLines',
  'salesShipments',
  'salesOrderLines',
  'salesOrders',
  'items',
  'customers',
  'paymentTerms',
] as const;

const amount = (cents: number) => cents / 100;

/**
 * Writes the world's ERP side in Business Central's entity shapes (GUID ids beside document
 * numbers, camelCase fields), replacing whatever the tables held. Run it inside a transaction.
 * Returns the number of rows per table.
 */
export function writeErp(db: Database, world: World): Record<string, number> {
  for (const table of ERP_TABLES) db.prepare(`DELETE FROM ${table}`).run();
  const insertTerms = db.prepare('INSERT INTO paymentTerms (id, code, displayName, dueDateCalculation) VALUES (?, ?, ?, ?)');
  const insertCustomer = db.prepare(
    `INSERT INTO customers (id, number, displayName, email, phoneNumber, addressLine1, city, state, country, postalCode, currencyCode,
       paymentTermsId, taxRegistrationNumber, creditLimit, blocked, balanceDue, lastModifiedDateTime, taxAreaCode)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertItem = db.prepare(
    `INSERT INTO items (id, number, displayName, description, type, itemCategoryCode, unitPrice, baseUnitOfMeasureCode, itemTrackingCode, warrantyMonths,
       inventory)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertOrder = db.prepare(
    `INSERT INTO salesOrders (id, number, externalDocumentNumber, orderDate, customerId, customerNumber, customerName, currencyCode,
       requestedDeliveryDate, totalAmountExcludingTax, totalTaxAmount, totalAmountIncludingTax, fullyShipped, status, lastModifiedDateTime)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertOrderLine = db.prepare(
    `INSERT INTO salesOrderLines (id, documentId, sequence, lineType, lineObjectNumber, description, quantity, unitPrice, amountExcludingTax,
       shippedQuantity, shipmentDate)
     VALUES (?, ?, ?, 'Item', ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertShipment = db.prepare(
    `INSERT INTO salesShipments (id, number, orderNumber, customerNumber, postingDate, shipmentMethodCode, shippingAgentCode,
       packageTrackingNumber, deliveredDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertShipmentLine = db.prepare(
    `INSERT INTO salesShipmentLines (id, documentId, documentNo, sequence, lineObjectNumber, description, quantity, shipmentDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertSerial = db.prepare(
    `INSERT INTO serialNumbers (serialNumber, itemNumber, customerNumber, orderNumber, shipmentNumber, warrantyStartDate, warrantyEndDate, warrantyCode)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertInvoice = db.prepare(
    `INSERT INTO salesInvoices (id, number, invoiceDate, postingDate, dueDate, customerId, customerNumber, orderId, orderNumber, currencyCode,
       totalAmountIncludingTax, remainingAmount, status, closedDate)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const counts = {
    paymentTerms: 0,
    customers: 0,
    items: 0,
    salesOrders: 0,
    salesOrderLines: 0,
    salesShipments: 0,
    salesShipmentLines: 0,
    serialNumbers: 0,
    salesInvoices: 0,
    salesReturnOrders: 0,
    salesReturnOrderLines: 0,
  };
  for (const t of world.paymentTerms) {
    insertTerms.run(t.id, t.code, t.displayName, t.dueDateCalculation);
    counts.paymentTerms++;
  }
  for (const c of world.customers) {
    const a = c.address;
    insertCustomer.run(
      c.erpId,
      c.number,
      c.name,
      c.billingEmail,
      c.phone,
      a.street,
      a.city,
      a.state,
      a.country,
      a.postalCode,
      c.currency,
      c.paymentTerms.id,
      c.taxRegistrationNumber,
      c.creditLimit,
      c.blocked ? 'All' : ' ',
      amount(c.balanceDueCents),
      c.erpModifiedAt,
      // The tax area of the ship-to: country, and state where the country taxes by state.
      a.state ? `${a.country}-${a.state}` : a.country,
    );
    counts.customers++;
  }
  for (const i of world.items) {
    insertItem.run(
      i.id,
      i.number,
      i.displayName,
      i.description,
      i.type,
      i.category,
      amount(i.unitPriceCents),
      i.unitOfMeasure,
      i.serialized ? 'SN' : null,
      i.warrantyMonths,
      // On hand: services carry none; goods a few dozen to a few hundred, by item.
      i.type === 'Service' ? 0 : 20 + ((Number.parseInt(i.id.replace(/-/g, '').slice(0, 6), 16) || 0) % 480),
    );
    counts.items++;
  }
  // The support plans, and the billing schedule of every active subscription (version 1: activated).
  for (const plan of Object.values(PLANS)) {
    insertItem.run(
      `plan-${plan.number}`,
      plan.number,
      plan.name,
      plan.name,
      'Service',
      'SERVICE',
      amount(plan.cents),
      'MONTH',
      null,
      null,
      0,
    );
    counts.items++;
  }
  const insertSchedule = db.prepare(
    `INSERT INTO subscriptionBillingSchedules (subscriptionId, customerNumber, itemNumber, quantity, unitPrice, billingPeriod, status,
       startDate, endDate, nextInvoiceDate, version, currencyCode, lastModifiedDateTime)
     VALUES (?, ?, ?, ?, ?, ?, 'Active', ?, ?, ?, 1, ?, ?)`,
  );
  const insertChange = db.prepare(
    'INSERT INTO subscriptionBillingChanges (changeKey, subscriptionId, version, appliedDateTime) VALUES (?, ?, 1, ?)',
  );
  for (const sub of subscriptionsOf(world)) {
    if (sub.status !== 'Active') continue;
    const k = sub.contract;
    insertSchedule.run(
      sub.id,
      k.customer.number,
      sub.plan.number,
      sub.quantity,
      amount(sub.unitPriceCents),
      sub.frequency,
      k.startDate,
      k.endDate,
      nextMonthStart(world.asOf),
      k.customer.currency,
      k.modifiedAt,
    );
    insertChange.run(`seed:${sub.id}`, sub.id, k.modifiedAt);
  }
  for (const o of world.orders) {
    const c = o.customer;
    insertOrder.run(
      o.id,
      o.number,
      o.externalDocumentNumber,
      o.orderDate,
      c.erpId,
      c.number,
      c.name,
      c.currency,
      o.requestedDeliveryDate,
      amount(o.exclCents),
      amount(o.taxCents),
      amount(o.inclCents),
      o.fullyShipped ? 1 : 0,
      o.status,
      o.modifiedAt,
    );
    counts.salesOrders++;
    for (const l of o.lines) {
      insertOrderLine.run(
        l.id,
        o.id,
        l.sequence,
        l.item.number,
        l.item.displayName,
        l.quantity,
        amount(l.unitPriceCents),
        amount(l.amountCents),
        l.shippedQuantity,
        l.shipmentDate,
      );
      counts.salesOrderLines++;
    }
  }
  for (const s of world.shipments) {
    insertShipment.run(
      s.id,
      s.number,
      s.order.number,
      s.order.customer.number,
      s.postingDate,
      s.shipmentMethodCode,
      s.carrier,
      s.trackingNumber,
      s.deliveredDate,
    );
    counts.salesShipments++;
    for (const l of s.lines) {
      insertShipmentLine.run(l.id, s.id, s.number, l.sequence, l.item.number, l.item.displayName, l.quantity, s.postingDate);
      counts.salesShipmentLines++;
    }
  }
  for (const u of world.units) {
    insertSerial.run(
      u.serialNumber,
      u.item.number,
      u.customer.number,
      u.order.number,
      u.shipment.number,
      u.startDate,
      u.endDate,
      u.warrantyCode,
    );
    counts.serialNumbers++;
  }
  for (const v of world.invoices) {
    insertInvoice.run(
      v.id,
      v.number,
      v.invoiceDate,
      v.invoiceDate,
      v.dueDate,
      v.customer.erpId,
      v.customer.number,
      v.order.id,
      v.order.number,
      v.customer.currency,
      amount(v.totalCents),
      amount(v.remainingCents),
      v.status,
      v.closedDate,
    );
    counts.salesInvoices++;
  }
  return counts;
}
