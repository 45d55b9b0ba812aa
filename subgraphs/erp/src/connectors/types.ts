/**
 * The ERP port: what the ERP subgraph asks of the ERP, in canonical terms. Adapters (embedded
 * SQLite, Business Central OData) map their system's records and ids to these shapes. Batch
 * methods take many keys and return the records found, in any order. Money amounts are decimal
 * strings with two decimals, never floats.
 */
export interface ErpConnector {
  customersByIds(ids: readonly string[]): Promise<ErpCustomerRecord[]>;
  productsBySkus(skus: readonly string[]): Promise<ProductRecord[]>;
  ordersByNumbers(numbers: readonly string[]): Promise<OrderRecord[]>;
  /** The `limit` most recent orders of each customer. */
  ordersByCustomerIds(customerIds: readonly string[], limit: number): Promise<OrderRecord[]>;
  orderLinesByOrderNumbers(numbers: readonly string[]): Promise<OrderLineRecord[]>;
  /**
   * Orders with the parts asked for (their lines, the lines' products, shipments, invoices), in
   * as few round trips as the ERP allows: what one order entity of a query will need, fetched
   * before its fields run instead of one trip per dependent field. Only the parts asked for are
   * read, so a query costs no more calls than field by field.
   */
  orderGraphsByNumbers(numbers: readonly string[], parts: OrderParts): Promise<OrderGraph>;
  /** Assets with their products when asked for, in as few round trips as the ERP allows. */
  assetGraphsBySerialNumbers(serialNumbers: readonly string[], parts: AssetParts): Promise<AssetGraph>;
  shipmentsByIds(ids: readonly string[]): Promise<ShipmentRecord[]>;
  shipmentsByOrderNumbers(numbers: readonly string[]): Promise<ShipmentRecord[]>;
  shipmentLinesByShipmentIds(ids: readonly string[]): Promise<ShipmentLineRecord[]>;
  assetsBySerialNumbers(serialNumbers: readonly string[]): Promise<AssetRecord[]>;
  assetsByShipmentIds(ids: readonly string[]): Promise<AssetRecord[]>;
  invoicesByNumbers(numbers: readonly string[]): Promise<InvoiceRecord[]>;
  invoicesByOrderNumbers(numbers: readonly string[]): Promise<InvoiceRecord[]>;
  /** The `limit` most recent invoices of each customer, optionally of one ERP status. */
  invoicesByCustomerIds(customerIds: readonly string[], query: InvoiceListQuery): Promise<InvoiceRecord[]>;
  returnOrdersByNumbers(numbers: readonly string[]): Promise<ReturnOrderRecord[]>;
  returnOrdersByCaseIds(caseIds: readonly string[]): Promise<ReturnOrderRecord[]>;
  /** The return order created with this external document number (the idempotency key), if any. */
  returnOrderByExternalDocument(externalDocumentNumber: string): Promise<ReturnOrderRecord | null>;
  returnLinesByReturnNumbers(numbers: readonly string[]): Promise<ReturnLineRecord[]>;
  /** Quantities already on return orders, per serial number and per order line. */
  returnedQuantities(query: { serialNumbers: readonly string[]; orderLines: readonly OrderLineKey[] }): Promise<ReturnedQuantities>;
  /**
   * Creates a return order. The external document number makes it idempotent: when one with
   * that number exists (an earlier call committed, then timed out), that one is returned.
   */
  createReturnOrder(order: NewReturnOrder): Promise<ReturnOrderRecord>;
  /** Customers whose tax registration number is one of these (compared without spaces, case-insensitively). */
  customersByTaxRegistrationNumbers(taxIds: readonly string[]): Promise<ErpCustomerRecord[]>;
  /** Customers with this name (case-insensitively) and postal code: the other half of a duplicate check. */
  customersByNameAndPostalCode(name: string, postalCode: string): Promise<ErpCustomerRecord[]>;
  /** The customer created for this reference (the CRM account it came from), if any. */
  customerByReference(reference: string): Promise<ErpCustomerRecord | null>;
  /**
   * Creates a customer with the next number of the customer series. Where one was created for
   * the reference before (an earlier call committed, then timed out), that one is returned.
   */
  createCustomer(customer: NewCustomer): Promise<ErpCustomerRecord>;
  /** Blocks a customer for everything (Business Central's blocked = All); false when there is none. */
  blockCustomer(number: string): Promise<boolean>;
  /** The billing schedules of subscriptions (the extension's subscription billing page), by subscription id. */
  billingSchedulesBySubscriptionIds(ids: readonly string[]): Promise<BillingScheduleRecord[]>;
  /** The billing schedules of customers, by customer number. */
  billingSchedulesByCustomerIds(customerIds: readonly string[]): Promise<BillingScheduleRecord[]>;
  /**
   * Applies a change of a subscription to its billing schedule (creating it on activation), once
   * per change key: a key applied before changes nothing again and returns the schedule as it is.
   * Each change applied raises the schedule's version by one.
   */
  applyBillingChange(change: BillingChange): Promise<BillingScheduleRecord>;
  /** What is on hand of each item found (its inventory), by SKU. */
  availableQuantities(skus: readonly string[]): Promise<Map<string, number>>;
  /** The sales order created with this external document number (the caller's reference), if any. */
  salesOrderByExternalDocument(externalDocumentNumber: string): Promise<OrderRecord | null>;
  /**
   * Creates a sales order with its lines in one call. Where an order with the external document
   * number exists (an earlier call committed, then timed out), that one is returned.
   */
  createSalesOrder(order: NewSalesOrder): Promise<OrderRecord>;
  /**
   * Cancels a sales order nothing of which has shipped (Business Central deletes it):
   * `not_found` when there is no such order (cancelled before), `shipped` when it is too late.
   */
  cancelSalesOrder(number: string): Promise<'cancelled' | 'not_found' | 'shipped'>;
  /**
   * Records as a change notice names them: by the ERP's own id (Business Central's systemId), each
   * with when it was last modified. Ids of records not found (deleted since) are left out.
   */
  changedRecordsByErpIds<K extends ErpChangeKind>(kind: K, ids: readonly string[]): Promise<ErpChangedRecordOf<K>[]>;
  /**
   * Records of a kind last modified after `after` (an ISO date-time, exclusive), oldest first:
   * what a poller reads from a system that pushes no notices, or a notice of many changes.
   */
  changedRecordsAfter<K extends ErpChangeKind>(kind: K, after: string): Promise<ErpChangedRecordOf<K>[]>;
  /** Resolves when the ERP answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The parts of an order a query selects beside the order itself. */
export interface OrderParts {
  readonly lines: boolean;
  /** The lines' products (implies the lines). */
  readonly products: boolean;
  readonly shipments: boolean;
  readonly invoices: boolean;
}

/** Orders found and the parts asked for; a part not asked for is empty. */
export interface OrderGraph {
  orders: OrderRecord[];
  lines: OrderLineRecord[];
  products: ProductRecord[];
  shipments: ShipmentRecord[];
  invoices: InvoiceRecord[];
}

export interface AssetParts {
  readonly products: boolean;
}

export interface AssetGraph {
  assets: AssetRecord[];
  products: ProductRecord[];
}

export type OrderStatus = 'DRAFT' | 'IN_REVIEW' | 'OPEN' | 'PARTIALLY_SHIPPED' | 'SHIPPED';
/** The ERP's own invoice states; OVERDUE is derived from OPEN and the due date. */
export type ErpInvoiceStatus = 'DRAFT' | 'OPEN' | 'PAID' | 'CANCELED';
export type WarrantyCoverage = 'STANDARD' | 'EXTENDED' | 'PARTS_ONLY';

export interface InvoiceListQuery {
  limit: number;
  status?: ErpInvoiceStatus | undefined;
  /** With status OPEN: only those whose due date is before this date (overdue), or on/after it. */
  dueBefore?: string | undefined;
  dueOnOrAfter?: string | undefined;
}

export interface ErpCustomerRecord {
  /** Customer number: the canonical key. */
  id: string;
  erpId: string;
  name: string;
  currency: string;
  paymentTerms: string | null;
  taxRegistrationNumber: string | null;
  /** 0: no limit (Business Central's meaning). */
  creditLimit: string;
  creditHold: boolean;
  /** The tax area the customer's documents are taxed in; null: none set (no order can be taxed). */
  taxArea: string | null;
  /** Remaining amount over the customer's open invoices. */
  balanceDue: string;
}

export interface ProductRecord {
  sku: string;
  name: string;
  description: string | null;
  category: string | null;
  unitPrice: string;
  /** The company's local currency, in which item prices are kept. */
  currency: string;
  serialized: boolean;
  warrantyMonths: number | null;
}

export interface OrderRecord {
  number: string;
  erpId: string;
  orderDate: string;
  status: OrderStatus;
  customerId: string;
  customerPurchaseOrder: string | null;
  requestedDeliveryDate: string | null;
  currency: string;
  totalIncludingTax: string;
}

export interface OrderLineRecord {
  orderNumber: string;
  sequence: number;
  sku: string | null;
  description: string | null;
  quantity: number;
  shippedQuantity: number;
  unitPrice: string;
  amount: string;
  currency: string;
  shipmentDate: string | null;
}

export interface ShipmentRecord {
  /** Shipment number. */
  id: string;
  orderNumber: string;
  customerId: string;
  carrier: string | null;
  trackingNumber: string | null;
  shippedDate: string;
  deliveredDate: string | null;
}

export interface ShipmentLineRecord {
  shipmentId: string;
  sequence: number;
  sku: string;
  quantity: number;
}

export interface AssetRecord {
  serialNumber: string;
  sku: string;
  customerId: string;
  orderNumber: string;
  shipmentId: string;
  warrantyStartDate: string;
  warrantyEndDate: string;
  warrantyCoverage: WarrantyCoverage;
}

export interface InvoiceRecord {
  number: string;
  invoiceDate: string;
  dueDate: string;
  customerId: string;
  orderNumber: string | null;
  currency: string;
  amount: string;
  balance: string;
  status: ErpInvoiceStatus;
  paidDate: string | null;
}

/** A customer as other entities point to it: ERP fields load the record only when asked. */
export interface CustomerRef {
  id: string;
}

export type ReturnResolution = 'REPLACE' | 'REPAIR' | 'REFUND';
export type ReturnReason = 'DEFECTIVE' | 'DAMAGED_IN_TRANSIT' | 'WRONG_ITEM' | 'NOT_AS_DESCRIBED' | 'OTHER';
export type ReturnStatus = 'AUTHORIZED' | 'RECEIVED' | 'CLOSED';

export interface OrderLineKey {
  orderNumber: string;
  sequence: number;
}

export interface ReturnedQuantities {
  bySerialNumber: Map<string, number>;
  /** Keyed by `${orderNumber}#${sequence}`. */
  byOrderLine: Map<string, number>;
}

export interface NewReturnOrder {
  externalDocumentNumber: string;
  customerId: string;
  caseId: string;
  resolution: ReturnResolution;
  currency: string;
  lines: NewReturnLine[];
}

export interface NewReturnLine {
  sku: string;
  quantity: number;
  unitPrice: string;
  reason: ReturnReason;
  serialNumber: string | null;
  orderNumber: string;
  orderLineSequence: number | null;
  appliesToInvoiceNumber: string | null;
}

export interface ReturnOrderRecord {
  number: string;
  externalDocumentNumber: string;
  customerId: string;
  caseId: string | null;
  resolution: ReturnResolution;
  status: ReturnStatus;
  currency: string;
  createdAt: string;
}

export interface ReturnLineRecord {
  returnNumber: string;
  sequence: number;
  sku: string;
  quantity: number;
  unitPrice: string;
  reason: ReturnReason;
  serialNumber: string | null;
  orderNumber: string | null;
}

/** A support case as the ERP sees it: the key its return orders point to. */
export interface CaseRef {
  id: string;
}

export interface NewSalesOrder {
  externalDocumentNumber: string;
  customerId: string;
  currency: string;
  /** The date the customer is promised (Business Central's requested delivery date). */
  requestedDeliveryDate: string | null;
  lines: NewSalesOrderLine[];
}

export interface NewSalesOrderLine {
  sku: string;
  quantity: number;
  unitPrice: string;
  description: string | null;
}

export interface NewCustomer {
  /** The CRM account it is made from: the same reference finds the customer made before. */
  reference: string;
  name: string;
  email: string;
  phone: string | null;
  address: { street: string; city: string; state: string | null; postalCode: string; country: string };
  currency: string;
  taxRegistrationNumber: string;
  /** The payment terms code new customers get (Business Central's paymentTermsId is looked up by it). */
  paymentTermsCode: string;
  taxArea: string;
}

export type BillingFrequency = 'MONTHLY' | 'ANNUAL';
export type BillingStatus = 'ACTIVE' | 'SUSPENDED';

/** A subscription's state as a change leaves it, for its billing schedule. */
export interface BillingChange {
  /** The change's key: applied once. */
  key: string;
  subscriptionId: string;
  customerId: string;
  /** The item the subscription is billed as. */
  sku: string;
  quantity: number;
  /** Per unit and billing period. */
  unitPrice: string;
  frequency: BillingFrequency;
  status: BillingStatus;
  startDate: string;
  endDate: string | null;
  currency: string;
}

export interface BillingScheduleRecord {
  subscriptionId: string;
  customerId: string;
  sku: string;
  quantity: number;
  unitPrice: string;
  frequency: BillingFrequency;
  status: BillingStatus;
  startDate: string;
  endDate: string | null;
  /** When the next invoice is due; null while suspended. */
  nextInvoiceDate: string | null;
  /** Changes applied so far. */
  version: number;
  currency: string;
}

/** The kinds of ERP records whose changes the ERP's change feed tells. */
export type ErpChangeKind = 'customer' | 'order' | 'shipment' | 'invoice';

interface ErpRecordOfKind {
  customer: ErpCustomerRecord;
  order: OrderRecord;
  shipment: ShipmentRecord;
  invoice: InvoiceRecord;
}

/** A record as the change feed reads it: its kind, the ERP's id for it, when it last changed. */
export type ErpChangedRecord = {
  [K in ErpChangeKind]: {
    readonly kind: K;
    /** The ERP's own id (a GUID: Business Central's systemId). */
    readonly erpId: string;
    /** When it was last modified (ISO date-time); null when the ERP keeps no such time for it. */
    readonly lastModified: string | null;
    readonly record: ErpRecordOfKind[K];
  };
}[ErpChangeKind];

export type ErpChangedRecordOf<K extends ErpChangeKind> = Extract<ErpChangedRecord, { kind: K }>;
