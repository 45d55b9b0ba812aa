import type { EventDraft } from '../../../../platform/events/cloudevent.ts';
import { factsOf, known, type ChangeFacts } from '../../../../platform/events/source.ts';

export type { ChangeFacts };
import type { ErpChangedRecord, ErpInvoiceStatus, OrderStatus } from '../connectors/types.ts';

/**
 * The ERP's canonical change events (schema/events/concord.*.json), built from what the ERP says
 * in canonical terms, whichever way it told: the embedded ERP's change log, Business Central's
 * webhook notifications or a poll of what changed.
 */

/** The ERP customer (its billing profile, credit, balance) of a customer number changed. */
export function customerUpdated(customerId: string, facts: ChangeFacts = {}): EventDraft {
  // customer.updated tells no deletion: a customer gone from the ERP is a change of the customer.
  return {
    type: 'concord.customer.updated',
    subject: `customer/${customerId}`,
    data: { customerId, ...factsOf({ changes: facts.changes }) },
  };
}

export interface OrderState {
  readonly number: string;
  readonly customerId: string;
  readonly status?: OrderStatus | undefined;
}

export function orderUpdated(order: OrderState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.order.updated',
    subject: `order/${order.number}`,
    data: { orderNumber: order.number, customerId: order.customerId, ...known({ status: order.status }), ...factsOf(facts) },
  };
}

export interface ShipmentState {
  /** The shipment number. */
  readonly id: string;
  readonly orderNumber: string;
  readonly customerId: string;
  readonly shippedDate?: string | undefined;
  readonly carrier?: string | null | undefined;
  readonly trackingNumber?: string | null | undefined;
  readonly deliveredDate?: string | null | undefined;
}

export function shipmentConfirmed(shipment: ShipmentState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.shipment.confirmed',
    subject: `shipment/${shipment.id}`,
    data: {
      shipmentId: shipment.id,
      orderNumber: shipment.orderNumber,
      customerId: shipment.customerId,
      ...known({
        shippedDate: shipment.shippedDate,
        carrier: shipment.carrier,
        trackingNumber: shipment.trackingNumber,
        deliveredDate: shipment.deliveredDate,
        // As the graph derives it (resolvers/Shipment.ts); unknown when the delivery date is.
        status: shipment.deliveredDate === undefined ? undefined : shipment.deliveredDate ? 'DELIVERED' : 'IN_TRANSIT',
      }),
      ...factsOf(facts),
    },
  };
}

export interface InvoiceState {
  readonly number: string;
  readonly customerId: string;
  readonly orderNumber?: string | null | undefined;
  readonly status?: ErpInvoiceStatus | undefined;
  readonly amount?: string | undefined;
  readonly balance?: string | undefined;
  readonly currency?: string | undefined;
  readonly dueDate?: string | undefined;
}

export function invoicePosted(invoice: InvoiceState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.invoice.posted',
    subject: `invoice/${invoice.number}`,
    data: {
      invoiceNumber: invoice.number,
      customerId: invoice.customerId,
      ...known({
        orderNumber: invoice.orderNumber,
        status: invoice.status,
        amount: invoice.amount,
        balance: invoice.balance,
        currency: invoice.currency,
        dueDate: invoice.dueDate,
      }),
      ...factsOf(facts),
    },
  };
}

/** The event of a record the change feed read through the connector. */
export function draftOf(changed: ErpChangedRecord, facts: ChangeFacts = {}): EventDraft {
  switch (changed.kind) {
    case 'customer':
      return customerUpdated(changed.record.id, facts);
    case 'order':
      return orderUpdated(changed.record, facts);
    case 'shipment':
      return shipmentConfirmed(changed.record, facts);
    case 'invoice':
      return invoicePosted(changed.record, facts);
  }
}

/** What the feed remembers of a record it read: its keys, for the event of its deletion, which names only its id. */
export interface KnownRecord {
  readonly kind: ErpChangedRecord['kind'];
  readonly number: string;
  readonly customerId: string | null;
  readonly orderNumber: string | null;
}

export function knownOf(changed: ErpChangedRecord): KnownRecord {
  switch (changed.kind) {
    case 'customer':
      return { kind: changed.kind, number: changed.record.id, customerId: changed.record.id, orderNumber: null };
    case 'order':
      return { kind: changed.kind, number: changed.record.number, customerId: changed.record.customerId, orderNumber: null };
    case 'shipment':
      return {
        kind: changed.kind,
        number: changed.record.id,
        customerId: changed.record.customerId,
        orderNumber: changed.record.orderNumber,
      };
    case 'invoice':
      return {
        kind: changed.kind,
        number: changed.record.number,
        customerId: changed.record.customerId,
        orderNumber: changed.record.orderNumber,
      };
  }
}

/** The event of a deleted record, from what the feed knew of it; null when that is not enough to name it. */
export function deletedDraftOf(known: KnownRecord): EventDraft | null {
  const deleted = { deleted: true };
  switch (known.kind) {
    case 'customer':
      return customerUpdated(known.number);
    case 'order':
      return known.customerId ? orderUpdated({ number: known.number, customerId: known.customerId }, deleted) : null;
    case 'shipment':
      return known.customerId && known.orderNumber
        ? shipmentConfirmed({ id: known.number, orderNumber: known.orderNumber, customerId: known.customerId }, deleted)
        : null;
    case 'invoice':
      return known.customerId
        ? invoicePosted({ number: known.number, customerId: known.customerId, orderNumber: known.orderNumber }, deleted)
        : null;
  }
}
