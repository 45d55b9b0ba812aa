import { pagingGuard } from '../../../../platform/paging.ts';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import { toDecimal } from '../../../../platform/sql.ts';
import { slices } from '../../../../platform/chunks.ts';
import { createVendorHttp, failureDetails, type StatusTable, type VendorAnswer } from '../../../../platform/vendor-http.ts';
import type {
  AssetRecord,
  BillingChange,
  BillingFrequency,
  BillingScheduleRecord,
  BillingStatus,
  ErpChangedRecord,
  ErpChangedRecordOf,
  ErpChangeKind,
  ErpConnector,
  ErpCustomerRecord,
  ErpInvoiceStatus,
  InvoiceListQuery,
  InvoiceRecord,
  NewCustomer,
  NewReturnOrder,
  NewSalesOrder,
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
} from './types.ts';
import { byField, encodeOption, isObject, stringLiteral } from './odata.ts';
import { BC_INVOICE_STATUSES, INVOICE_STATUSES, ORDER_STATUSES, RETURN_STATUSES, toAsset, type BcSerialNumber } from './vocabulary.ts';
import { composeAssetGraph, composeOrderGraph } from './graphs.ts';

/**
 * The ERP adapter over Microsoft Dynamics 365 Business Central, through its REST API v2.0
 * (OData v4) and the custom API page the deployment adds beside it.
 *
 * What the standard API lacks comes from the custom API page, an extension installed in the
 * tenant and served at `/api/{publisher}/{group}/{version}/companies({id})/…`: carrier and
 * tracking (`shipments`), serial numbers with their warranty (`serialNumbers`), return orders
 * and their lines (`salesReturnOrders`, `salesReturnOrderLines`), plus item tracking and
 * warranty months (`items`), the date an invoice was paid (`salesInvoices`) and the CRM account a
 * customer was onboarded from (`customerReferences`, a page over the Customer table), and the
 * Subscription Billing schedules with the change keys applied to them (`subscriptionBillingSchedules`
 * keyed by subscription id, `subscriptionBillingChanges` keyed by change key). Sales orders
 * and customers are written through the standard API: orders created with their lines in one deep
 * insert and cancelled by deleting them, customers created from their number series and blocked by
 * a PATCH. Each extension
 * page sits over the same Business Central table as its standard counterpart and exposes the
 * standard fields beside its own, so every read is one request rather than a standard read
 * joined with an extension read.
 */
export interface BusinessCentralOptions {
  /** The environment's API root: `https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}`. */
  baseUrl: string;
  /** The company's id (a GUID), as `companies({id})` in every path. */
  companyId: string;
  /** Where the custom API page (the extension) is served: `/api/{publisher}/{group}/{version}/…`. */
  extension: { publisher: string; group: string; version: string };
  /** An OAuth 2.0 client-credentials access token, fetched and cached by the caller. */
  token: () => Promise<string>;
  /** A fresh token after a 401 (the cached one was revoked or expired early); tried once per request. */
  refreshToken?: () => Promise<string>;
  telemetry: ConnectorTelemetry;
  resilience: Resilience;
  /** Rows per page, asked with `Prefer: odata.maxpagesize` (Business Central serves at most 20,000). */
  maxPageSize?: number;
}

/**
 * A Business Central call that failed, with the error code it answered
 * (`BadRequest_NotFound`, `Authentication_InvalidCredentials`, …) or null when it did not answer.
 */
export class BusinessCentralError extends SystemCallError {
  override name = 'BusinessCentralError';
  constructor(
    message: string,
    readonly code: string | null,
    details: { retryable: boolean; retryAfterMs?: number | undefined; status?: number | undefined },
    options?: { cause?: unknown },
  ) {
    super(message, details, options);
  }
}

// Limits of the requests the adapter builds. Business Central (and the proxies in front of it)
// reject URLs from about 2,048 characters, so batched filters stay well below that.
const MAX_URL_LENGTH = 1_600;
const MAX_FILTER_TERMS = 50;
/** Business Central accepts at most 100 operations in one JSON `$batch` request. */
const MAX_BATCH_OPERATIONS = 100;
const DEFAULT_PAGE_SIZE = 1_000;
/** Reads of an order a cancellation makes when its DELETE meets a changed order. */
const MAX_CANCEL_READS = 3;
/** Reads of a customer a block makes when its PATCH meets a changed customer. */
const MAX_BLOCK_READS = 3;
/** Rounds of reads a billing change makes when its writes meet a changed schedule or change record. */
const MAX_BILLING_READS = 3;

// ---------------------------------------------------------------------------------------------
// The Business Central ↔ canonical mapping: which API, entity set and fields each read uses,
// the wire shapes, and the functions that turn them into the port's records. Nothing else in
// this file knows a Business Central field name.
// ---------------------------------------------------------------------------------------------

type Api = 'standard' | 'extension';

/** One kind of read: the API and entity set it goes to, the fields it selects, what it expands. */
interface Read {
  api: Api;
  set: string;
  select: readonly string[];
  expand?: { navigation: string; select: readonly string[] };
}

const CUSTOMER_FIELDS = [
  'id',
  'number',
  'displayName',
  'currencyCode',
  'taxRegistrationNumber',
  'creditLimit',
  'blocked',
  'taxAreaId',
  'taxAreaDisplayName',
  'balanceDue',
] as const;
const CUSTOMER_PAYMENT_TERM = { navigation: 'paymentTerm', select: ['displayName'] } as const;
/** A sales order's own fields, and its lines' (reads of orders, of lines, and of both at once). */
const ORDER_FIELDS = [
  'id',
  'number',
  'orderDate',
  'status',
  'fullyShipped',
  'customerNumber',
  'externalDocumentNumber',
  'requestedDeliveryDate',
  'currencyCode',
  'totalAmountIncludingTax',
] as const;
const ORDER_LINE_FIELDS = [
  'sequence',
  'lineObjectNumber',
  'description',
  'quantity',
  'shippedQuantity',
  'unitPrice',
  'amountExcludingTax',
  'shipmentDate',
] as const;

const READS = {
  customers: { api: 'standard', set: 'customers', select: CUSTOMER_FIELDS, expand: CUSTOMER_PAYMENT_TERM },
  /** Customers with their postal code, for the name-and-postal-code check. */
  customersWithPostalCode: { api: 'standard', set: 'customers', select: [...CUSTOMER_FIELDS, 'postalCode'], expand: CUSTOMER_PAYMENT_TERM },
  /** What blocking a customer reads first: its id, its state and (with every entity) its ETag. */
  customerBlocked: { api: 'standard', set: 'customers', select: ['id', 'number', 'blocked'] },
  /** Extension: the CRM account a customer was onboarded from; its id is the customer's. */
  customerReferences: { api: 'extension', set: 'customerReferences', select: ['id', 'customerNumber', 'crmReference'] },
  /** Payment terms by code: a new customer's paymentTermsId. */
  paymentTerms: { api: 'standard', set: 'paymentTerms', select: ['id', 'code'] },
  /** The code of a tax area, for a customer whose tax area has no display name (a blank description). */
  taxAreas: { api: 'standard', set: 'taxAreas', select: ['id', 'code'] },
  /** Extension: item tracking and warranty months are not on the standard item. */
  items: {
    api: 'extension',
    set: 'items',
    select: ['number', 'displayName', 'description', 'itemCategoryCode', 'unitPrice', 'itemTrackingCode', 'warrantyMonths'],
  },
  /** What is on hand: the standard item's read-only `inventory`. */
  inventory: { api: 'standard', set: 'items', select: ['number', 'inventory'] },
  orders: {
    api: 'standard',
    set: 'salesOrders',
    select: ORDER_FIELDS,
    // Only the shipped quantities, to tell a partly shipped order from an open one.
    expand: { navigation: 'salesOrderLines', select: ['shippedQuantity'] },
  },
  orderLines: {
    api: 'standard',
    set: 'salesOrders',
    select: ['number', 'currencyCode'],
    expand: {
      navigation: 'salesOrderLines',
      select: ORDER_LINE_FIELDS,
    },
  },
  /** An order and its lines in one read: the order's fields with the lines' (for an order graph). */
  ordersWithLines: {
    api: 'standard',
    set: 'salesOrders',
    select: ORDER_FIELDS,
    expand: {
      navigation: 'salesOrderLines',
      select: ORDER_LINE_FIELDS,
    },
  },
  /** Extension: carrier (shipping agent), tracking number and delivery date. */
  shipments: {
    api: 'extension',
    set: 'shipments',
    select: ['number', 'orderNumber', 'customerNumber', 'postingDate', 'shippingAgentCode', 'packageTrackingNumber', 'deliveredDate'],
  },
  shipmentLines: {
    api: 'standard',
    set: 'salesShipments',
    select: ['number'],
    expand: { navigation: 'salesShipmentLines', select: ['sequence', 'lineObjectNumber', 'quantity'] },
  },
  /** Extension: serial numbers and their warranty. */
  serialNumbers: {
    api: 'extension',
    set: 'serialNumbers',
    select: [
      'serialNumber',
      'itemNumber',
      'customerNumber',
      'orderNumber',
      'shipmentNumber',
      'warrantyStartDate',
      'warrantyEndDate',
      'warrantyCode',
    ],
  },
  /** Extension: the standard invoice plus the date it was closed (fully paid). */
  invoices: {
    api: 'extension',
    set: 'salesInvoices',
    select: [
      'number',
      'invoiceDate',
      'dueDate',
      'customerNumber',
      'orderNumber',
      'currencyCode',
      'totalAmountIncludingTax',
      'remainingAmount',
      'status',
      'closedDate',
    ],
  },
  /** Extension: return orders. */
  returnOrders: {
    api: 'extension',
    set: 'salesReturnOrders',
    select: ['number', 'externalDocumentNumber', 'customerNumber', 'caseNumber', 'resolution', 'status', 'currencyCode', 'createdDateTime'],
  },
  returnLines: {
    api: 'extension',
    set: 'salesReturnOrders',
    select: ['number'],
    expand: {
      navigation: 'salesReturnOrderLines',
      select: ['sequence', 'lineObjectNumber', 'quantity', 'unitPrice', 'returnReasonCode', 'serialNumber', 'orderNumber'],
    },
  },
  returnedBySerial: { api: 'extension', set: 'salesReturnOrderLines', select: ['serialNumber', 'quantity'] },
  returnedByOrderLine: { api: 'extension', set: 'salesReturnOrderLines', select: ['orderNumber', 'orderLineSequence', 'quantity'] },
  /** Extension: a subscription's billing schedule (Subscription Billing), keyed by subscription id. */
  billingSchedules: {
    api: 'extension',
    set: 'subscriptionBillingSchedules',
    select: [
      'subscriptionId',
      'customerNumber',
      'itemNumber',
      'quantity',
      'unitPrice',
      'billingPeriod',
      'status',
      'startDate',
      'endDate',
      'nextInvoiceDate',
      'version',
      'currencyCode',
    ],
  },
  /** Extension: the change keys applied to billing schedules, each with the schedule version it makes. */
  billingChanges: { api: 'extension', set: 'subscriptionBillingChanges', select: ['changeKey', 'subscriptionId', 'version'] },
  /** The company's local currency (LCY), in which item prices are kept. */
  companyInformation: { api: 'standard', set: 'companyInformation', select: ['currencyCode'] },
} as const satisfies Record<string, Read>;

/**
 * What the change feed reads of each kind: the port's reads plus the entity's id (the systemId a
 * webhook notification names) and its lastModifiedDateTime (what a poll filters and orders on).
 * The extension's shipments and invoices sit over the same tables as the standard entities, so
 * their ids are the ids the standard API's notifications name.
 */
const CHANGE_READS = {
  customer: { ...READS.customers, select: [...READS.customers.select, 'lastModifiedDateTime'] },
  order: { ...READS.orders, select: [...READS.orders.select, 'lastModifiedDateTime'] },
  shipment: { ...READS.shipments, select: ['id', ...READS.shipments.select, 'lastModifiedDateTime'] },
  invoice: { ...READS.invoices, select: ['id', ...READS.invoices.select, 'lastModifiedDateTime'] },
} as const satisfies Record<ErpChangeKind, Read>;

/** An entity as the change feed reads it: the fields of its kind's read, its id and modification time. */
interface BcChanged {
  id: string;
  lastModifiedDateTime: string;
}

// The wire shapes, as selected above. Business Central never sends null for a field: blank
// text is "", a blank date 0001-01-01, a blank number 0, and an enum's blank option "_x0020_".
interface BcCustomer {
  id: string;
  number: string;
  displayName: string;
  currencyCode: string;
  taxRegistrationNumber: string;
  creditLimit: number;
  blocked: string;
  taxAreaId: string;
  taxAreaDisplayName: string;
  balanceDue: number;
  paymentTerm?: { displayName: string } | null;
}
interface BcCustomerWithPostalCode extends BcCustomer {
  postalCode: string;
}
interface BcCustomerBlocked {
  '@odata.etag'?: string;
  id: string;
  number: string;
  blocked: string;
}
interface BcCustomerReference {
  '@odata.etag'?: string;
  id: string;
  customerNumber: string;
  crmReference: string;
}
interface BcTaxArea {
  id: string;
  code: string;
}
interface BcPaymentTerm {
  id: string;
  code: string;
}
interface BcItem {
  number: string;
  displayName: string;
  description: string;
  itemCategoryCode: string;
  unitPrice: number;
  itemTrackingCode: string;
  warrantyMonths: number;
}
interface BcItemInventory {
  number: string;
  inventory: number;
}
interface BcSalesOrder {
  '@odata.etag'?: string;
  id: string;
  number: string;
  orderDate: string;
  status: string;
  fullyShipped: boolean;
  customerNumber: string;
  externalDocumentNumber: string;
  requestedDeliveryDate: string;
  currencyCode: string;
  totalAmountIncludingTax: number;
  salesOrderLines?: { shippedQuantity: number }[];
}
interface BcSalesOrderLines {
  number: string;
  currencyCode: string;
  salesOrderLines?: {
    sequence: number;
    lineObjectNumber: string;
    description: string;
    quantity: number;
    shippedQuantity: number;
    unitPrice: number;
    amountExcludingTax: number;
    shipmentDate: string;
  }[];
}
interface BcShipment {
  number: string;
  orderNumber: string;
  customerNumber: string;
  postingDate: string;
  shippingAgentCode: string;
  packageTrackingNumber: string;
  deliveredDate: string;
}
interface BcSalesShipmentLines {
  number: string;
  salesShipmentLines?: { sequence: number; lineObjectNumber: string; quantity: number }[];
}
interface BcInvoice {
  number: string;
  invoiceDate: string;
  dueDate: string;
  customerNumber: string;
  orderNumber: string;
  currencyCode: string;
  totalAmountIncludingTax: number;
  remainingAmount: number;
  status: string;
  closedDate: string;
}
interface BcReturnOrder {
  number: string;
  externalDocumentNumber: string;
  customerNumber: string;
  caseNumber: string;
  resolution: string;
  status: string;
  currencyCode: string;
  createdDateTime: string;
}
interface BcReturnLines {
  number: string;
  salesReturnOrderLines?: {
    sequence: number;
    lineObjectNumber: string;
    quantity: number;
    unitPrice: number;
    returnReasonCode: string;
    serialNumber: string;
    orderNumber: string;
  }[];
}
interface BcReturnedBySerial {
  serialNumber: string;
  quantity: number;
}
interface BcReturnedByOrderLine {
  orderNumber: string;
  orderLineSequence: number;
  quantity: number;
}

interface BcBillingSchedule {
  '@odata.etag'?: string;
  subscriptionId: string;
  customerNumber: string;
  itemNumber: string;
  quantity: number;
  unitPrice: number;
  billingPeriod: string;
  status: string;
  startDate: string;
  endDate: string;
  nextInvoiceDate: string;
  version: number;
  currencyCode: string;
}
interface BcBillingChange {
  '@odata.etag'?: string;
  changeKey: string;
  subscriptionId: string;
  version: number;
}

/** How Business Central writes the blank option of an enum (`blocked: " "`) in OData. */
const BLANK_ENUM = '_x0020_';

/** Blank text ("") as null. */
function text(value: string | null | undefined): string | null {
  return value ? value : null;
}

const BLANK_GUID = '00000000-0000-0000-0000-000000000000';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A blank GUID (all zeros, as Business Central sends an unset reference) as null, lower-cased otherwise. */
function guid(value: string | null | undefined): string | null {
  return !value || value === BLANK_GUID || !GUID.test(value) ? null : value.toLowerCase();
}

/** A blank date (0001-01-01) as null. */
function date(value: string | null | undefined): string | null {
  return !value || value.startsWith('0001-01-01') ? null : value;
}

/**
 * The customer's tax area: its display name (the tax area's description, or the VAT business
 * posting group's), or the code of the tax area it points to when that description is blank.
 */
function taxAreaOf(row: BcCustomer, codes: ReadonlyMap<string, string>): string | null {
  const id = guid(row.taxAreaId);
  return text(row.taxAreaDisplayName) ?? (id ? text(codes.get(id)) : null);
}

function toCustomer(row: BcCustomer, taxAreaCodes: ReadonlyMap<string, string>): ErpCustomerRecord {
  return {
    id: row.number,
    erpId: row.id,
    name: row.displayName,
    currency: row.currencyCode,
    paymentTerms: text(row.paymentTerm?.displayName),
    taxRegistrationNumber: text(row.taxRegistrationNumber),
    creditLimit: toDecimal(row.creditLimit),
    // Blocked is blank, Ship, Invoice or All; any block is a credit hold.
    creditHold: row.blocked !== BLANK_ENUM && row.blocked.trim() !== '',
    taxArea: taxAreaOf(row, taxAreaCodes),
    balanceDue: toDecimal(row.balanceDue),
  };
}

function toProduct(row: BcItem, localCurrency: string): ProductRecord {
  return {
    sku: row.number,
    name: row.displayName,
    description: text(row.description),
    category: text(row.itemCategoryCode),
    unitPrice: toDecimal(row.unitPrice),
    currency: localCurrency,
    serialized: row.itemTrackingCode === 'SN',
    // An integer field cannot be blank: 0 months is an item without a warranty.
    warrantyMonths: row.warrantyMonths > 0 ? row.warrantyMonths : null,
  };
}

/** Whether anything of the order has shipped: then Business Central no longer lets it be deleted. */
function hasShipped(row: BcSalesOrder): boolean {
  return row.fullyShipped || (row.salesOrderLines ?? []).some((line) => line.shippedQuantity > 0);
}

function toOrder(row: BcSalesOrder): OrderRecord {
  const anyShipped = (row.salesOrderLines ?? []).some((line) => line.shippedQuantity > 0);
  const status: OrderStatus = row.fullyShipped ? 'SHIPPED' : anyShipped ? 'PARTIALLY_SHIPPED' : (ORDER_STATUSES[row.status] ?? 'OPEN');
  return {
    number: row.number,
    erpId: row.id,
    orderDate: row.orderDate,
    status,
    customerId: row.customerNumber,
    customerPurchaseOrder: text(row.externalDocumentNumber),
    requestedDeliveryDate: date(row.requestedDeliveryDate),
    currency: row.currencyCode,
    totalIncludingTax: toDecimal(row.totalAmountIncludingTax),
  };
}

function toOrderLines(order: BcSalesOrderLines): OrderLineRecord[] {
  return (order.salesOrderLines ?? [])
    .map((line): OrderLineRecord => ({
      orderNumber: order.number,
      sequence: line.sequence,
      sku: text(line.lineObjectNumber),
      description: text(line.description),
      quantity: line.quantity,
      shippedQuantity: line.shippedQuantity,
      unitPrice: toDecimal(line.unitPrice),
      amount: toDecimal(line.amountExcludingTax),
      currency: order.currencyCode,
      shipmentDate: date(line.shipmentDate),
    }))
    .sort((a, b) => a.sequence - b.sequence);
}

function toShipment(row: BcShipment): ShipmentRecord {
  return {
    id: row.number,
    orderNumber: row.orderNumber,
    customerId: row.customerNumber,
    carrier: text(row.shippingAgentCode),
    trackingNumber: text(row.packageTrackingNumber),
    shippedDate: row.postingDate,
    deliveredDate: date(row.deliveredDate),
  };
}

function toShipmentLines(shipment: BcSalesShipmentLines): ShipmentLineRecord[] {
  return (shipment.salesShipmentLines ?? [])
    .map((line) => ({ shipmentId: shipment.number, sequence: line.sequence, sku: line.lineObjectNumber, quantity: line.quantity }))
    .sort((a, b) => a.sequence - b.sequence);
}

function toInvoice(row: BcInvoice): InvoiceRecord {
  return {
    number: row.number,
    invoiceDate: row.invoiceDate,
    dueDate: row.dueDate,
    customerId: row.customerNumber,
    orderNumber: text(row.orderNumber),
    currency: row.currencyCode,
    amount: toDecimal(row.totalAmountIncludingTax),
    balance: toDecimal(row.remainingAmount),
    status: INVOICE_STATUSES[row.status] ?? 'OPEN',
    paidDate: date(row.closedDate),
  };
}

function toReturnOrder(row: BcReturnOrder, localCurrency: string): ReturnOrderRecord {
  return {
    number: row.number,
    externalDocumentNumber: row.externalDocumentNumber,
    customerId: row.customerNumber,
    caseId: text(row.caseNumber),
    resolution: (text(row.resolution) as ReturnResolution | null) ?? 'REPLACE',
    status: RETURN_STATUSES[row.status] ?? 'AUTHORIZED',
    // A blank currency code on a Business Central document means the local currency.
    currency: text(row.currencyCode) ?? localCurrency,
    createdAt: row.createdDateTime,
  };
}

function toReturnLines(order: BcReturnLines): ReturnLineRecord[] {
  return (order.salesReturnOrderLines ?? [])
    .map((line): ReturnLineRecord => ({
      returnNumber: order.number,
      sequence: line.sequence,
      sku: line.lineObjectNumber,
      quantity: line.quantity,
      unitPrice: toDecimal(line.unitPrice),
      reason: (text(line.returnReasonCode) as ReturnReason | null) ?? 'OTHER',
      serialNumber: text(line.serialNumber),
      orderNumber: text(line.orderNumber),
    }))
    .sort((a, b) => a.sequence - b.sequence);
}

/** The POST body of a new return order, header and lines in one deep insert. Blanks, not nulls: BC rejects null. */
function toReturnOrderBody(order: NewReturnOrder): Record<string, unknown> {
  return {
    customerNumber: order.customerId,
    externalDocumentNumber: order.externalDocumentNumber,
    returnReasonCode: order.lines[0]?.reason ?? 'OTHER',
    caseNumber: order.caseId,
    resolution: order.resolution,
    currencyCode: order.currency,
    salesReturnOrderLines: order.lines.map((line) => ({
      lineObjectNumber: line.sku,
      quantity: line.quantity,
      unitPrice: Number(line.unitPrice),
      returnReasonCode: line.reason,
      serialNumber: line.serialNumber ?? '',
      appliesToInvoiceNumber: line.appliesToInvoiceNumber ?? '',
      orderNumber: line.orderNumber,
      orderLineSequence: line.orderLineSequence ?? 0,
    })),
  };
}

/** The extension's options of a schedule's billing period and status. */
const BILLING_PERIODS: Readonly<Record<BillingFrequency, string>> = { MONTHLY: 'Monthly', ANNUAL: 'Annual' };
const BILLING_STATUSES: Readonly<Record<BillingStatus, string>> = { ACTIVE: 'Active', SUSPENDED: 'Suspended' };
/** A blank date as a body sends it: Business Central rejects null. */
const BLANK_DATE = '0001-01-01';

function toSchedule(row: BcBillingSchedule): BillingScheduleRecord {
  return {
    subscriptionId: row.subscriptionId,
    customerId: row.customerNumber,
    sku: row.itemNumber,
    quantity: row.quantity,
    unitPrice: toDecimal(row.unitPrice),
    frequency: row.billingPeriod === BILLING_PERIODS.ANNUAL ? 'ANNUAL' : 'MONTHLY',
    status: row.status === BILLING_STATUSES.SUSPENDED ? 'SUSPENDED' : 'ACTIVE',
    startDate: row.startDate,
    endDate: date(row.endDate),
    nextInvoiceDate: date(row.nextInvoiceDate),
    version: row.version,
    currency: row.currencyCode,
  };
}

/**
 * The body that writes a change to a schedule at `version`: a POST (with the subscription and its
 * customer) when there is no schedule yet, a PATCH otherwise, which keeps the schedule's customer.
 * The next invoice date is kept while the schedule stays active, blank while it is suspended, and
 * the change's start date when it becomes active.
 */
function toScheduleBody(change: BillingChange, current: BcBillingSchedule | null, version: number): Record<string, unknown> {
  const nextInvoiceDate = change.status === 'ACTIVE' ? ((current ? date(current.nextInvoiceDate) : null) ?? change.startDate) : null;
  return {
    ...(current ? {} : { subscriptionId: change.subscriptionId, customerNumber: change.customerId }),
    itemNumber: change.sku,
    quantity: change.quantity,
    unitPrice: Number(change.unitPrice),
    billingPeriod: BILLING_PERIODS[change.frequency],
    status: BILLING_STATUSES[change.status],
    startDate: change.startDate,
    endDate: change.endDate ?? BLANK_DATE,
    nextInvoiceDate: nextInvoiceDate ?? BLANK_DATE,
    version,
    currencyCode: change.currency,
  };
}

/** Orders schedules as the embedded adapter lists a customer's: by customer, start date, subscription. */
function byCustomerAndStart(a: BillingScheduleRecord, b: BillingScheduleRecord): number {
  for (const [x, y] of [
    [a.customerId, b.customerId],
    [a.startDate, b.startDate],
    [a.subscriptionId, b.subscriptionId],
  ] as const) {
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Business Central's VAT Registration No. (the API's taxRegistrationNumber) is a Text[20]. */
const TAX_REGISTRATION_LENGTH = 20;
/** Post codes, payment terms codes and tax area codes are Code[20] fields. */
const CODE_LENGTH = 20;

/** A tax registration number as the port compares it: without spaces, upper-cased. */
function taxIdKey(value: string | null | undefined): string {
  return (value ?? '').replace(/\s+/g, '').toUpperCase();
}

/**
 * The spellings a tax registration number is looked for in. Business Central keeps the number as
 * typed (a Text field) and may compare `eq` case-sensitively, so the filter names it as given,
 * without spaces, and each in upper and lower case; the answer is then compared by `taxIdKey`.
 * A stored number whose spaces or mixed case match none of these is not found by the filter.
 */
function taxIdSpellings(value: string): string[] {
  const trimmed = value.trim();
  const key = taxIdKey(value);
  const spellings = [trimmed, trimmed.toUpperCase(), trimmed.toLowerCase(), key, key.toLowerCase()];
  return [...new Set(spellings)].filter((spelling) => spelling && spelling.length <= TAX_REGISTRATION_LENGTH);
}

/**
 * The spellings a Code field's value is looked for in: as given and upper-cased (Business Central
 * upper-cases a Code field when it is set, data imported otherwise may not be). Empty when no
 * Code field can hold it.
 */
function codeSpellings(value: string): string[] {
  const trimmed = value.trim();
  return trimmed && trimmed.length <= CODE_LENGTH ? [...new Set([trimmed, trimmed.toUpperCase()])] : [];
}

/** Text compared as the port compares names and codes: trimmed, upper-cased. */
const folded = (value: string | null | undefined) => (value ?? '').trim().toUpperCase();

/** Orders customer numbers as a number series gives them (C9999 before C10000). */
const bySeriesNumber = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/**
 * The POST body of a new customer. `number` is left out, so Business Central takes the next one of
 * the customer number series; Blocked, the credit limit and the balance keep their defaults (blank,
 * 0). A blank is left out rather than sent as null, which BC rejects.
 */
function toCustomerBody(customer: NewCustomer, ids: { paymentTermsId: string | null; taxAreaId: string }): Record<string, unknown> {
  const { address } = customer;
  return {
    displayName: customer.name,
    ...(customer.email ? { email: customer.email } : {}),
    ...(customer.phone ? { phoneNumber: customer.phone } : {}),
    addressLine1: address.street,
    city: address.city,
    ...(address.state ? { state: address.state } : {}),
    country: address.country,
    postalCode: address.postalCode,
    currencyCode: customer.currency,
    ...(ids.paymentTermsId ? { paymentTermsId: ids.paymentTermsId } : {}),
    taxRegistrationNumber: customer.taxRegistrationNumber,
    taxAreaId: ids.taxAreaId,
  };
}

/** Business Central's External Document No. is a Code[35]: at most 35 characters, kept upper-cased. */
const EXTERNAL_DOCUMENT_LENGTH = 35;

/**
 * The external document number as Business Central keeps it (upper-cased), or null when no order
 * can carry it (blank, or longer than the field).
 */
function externalDocumentKey(value: string): string | null {
  const key = value.trim().toUpperCase();
  return key && key.length <= EXTERNAL_DOCUMENT_LENGTH ? key : null;
}

/**
 * The POST body of a new sales order, header and lines in one deep insert. `number` and `status`
 * are Business Central's to set; a blank is left out rather than sent as null, which BC rejects.
 * Each line names its item (`lineObjectNumber`); the price and description sent override the
 * item's defaults, which BC fills in when it validates the item.
 */
function toSalesOrderBody(order: NewSalesOrder, externalDocumentNumber: string): Record<string, unknown> {
  return {
    customerNumber: order.customerId,
    externalDocumentNumber,
    currencyCode: order.currency,
    ...(order.requestedDeliveryDate ? { requestedDeliveryDate: dateLiteral(order.requestedDeliveryDate) } : {}),
    salesOrderLines: order.lines.map((line) => ({
      lineType: 'Item',
      lineObjectNumber: line.sku,
      quantity: line.quantity,
      unitPrice: Number(line.unitPrice),
      ...(line.description ? { description: line.description } : {}),
    })),
  };
}

/** The first of the orders whose external document number is `key` (BC does not keep it unique), by number. */
function firstWithDocument(rows: readonly BcSalesOrder[], key: string): BcSalesOrder | null {
  const matching = rows.filter((row) => row.externalDocumentNumber.toUpperCase() === key);
  return matching.sort((a, b) => (a.number < b.number ? -1 : a.number > b.number ? 1 : 0))[0] ?? null;
}

// Filters in the mapping's terms.
const KEYS = {
  customerNumber: byField('number'),
  itemNumber: byField('number'),
  orderNumber: byField('number'),
  ordersOfCustomer: byField('customerNumber'),
  shipmentNumber: byField('number'),
  shipmentsOfOrder: byField('orderNumber'),
  serialNumber: byField('serialNumber'),
  serialsOfShipment: byField('shipmentNumber'),
  invoiceNumber: byField('number'),
  invoicesOfOrder: byField('orderNumber'),
  invoicesOfCustomer: byField('customerNumber'),
  returnNumber: byField('number'),
  returnsOfCase: byField('caseNumber'),
  returnByExternalDocument: byField('externalDocumentNumber'),
  returnedSerial: byField('serialNumber'),
  returnedOrder: byField('orderNumber'),
  salesOrderByExternalDocument: byField('externalDocumentNumber'),
  customerTaxId: byField('taxRegistrationNumber'),
  customerPostalCode: byField('postalCode'),
  crmReference: byField('crmReference'),
  referenceOfCustomer: byField('customerNumber'),
  code: byField('code'),
  scheduleOfSubscription: byField('subscriptionId'),
  schedulesOfCustomer: byField('customerNumber'),
  changeKey: byField('changeKey'),
  changesOfSubscription: byField('subscriptionId'),
  // An unquoted GUID literal: only keys that are GUIDs reach it.
  taxAreaId: (id: string) => `id eq ${id}`,
  systemId: (id: string) => `id eq ${id}`,
};
const RECENT_ORDERS_FIRST = 'orderDate desc,number desc';
const RECENT_INVOICES_FIRST = 'invoiceDate desc,number desc';

/** The extra conditions of an invoice list (state, due date), as an OData filter or null. */
function invoiceConditions(query: InvoiceListQuery): string | null {
  const conditions: string[] = [];
  if (query.status) conditions.push(anyOf(BC_INVOICE_STATUSES[query.status].map(byField('status'))));
  if (query.dueBefore) conditions.push(`dueDate lt ${dateLiteral(query.dueBefore)}`);
  if (query.dueOnOrAfter) conditions.push(`dueDate ge ${dateLiteral(query.dueOnOrAfter)}`);
  return conditions.length ? conditions.join(' and ') : null;
}

// ---------------------------------------------------------------------------------------------
// OData query text.
// ---------------------------------------------------------------------------------------------

/** An OData string literal: single quotes, a quote inside doubled. */

/** An OData date-time literal (unquoted, UTC); anything that is not a time is refused rather than sent. */
function dateTimeLiteral(value: string): string {
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new TypeError(`Not a date-time: ${value}`);
  return new Date(at).toISOString();
}

/** A blank date-time (0001-01-01T00:00:00Z) as null. */
function dateTime(value: string | null | undefined): string | null {
  return !value || value.startsWith('0001-01-01') ? null : value;
}

/** An OData date literal (unquoted); anything but YYYY-MM-DD is refused rather than sent. */
function dateLiteral(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) throw new TypeError(`Not a date: ${value}`);
  return value;
}

/** Terms joined with `or`, parenthesised when there are several so they combine with `and`. */
function anyOf(terms: readonly string[]): string {
  return terms.length === 1 ? terms[0]! : `(${terms.join(' or ')})`;
}

interface KeyFilter {
  filter: string;
  keys: number;
}

interface ListParams {
  filter?: string | null;
  orderby?: string;
  top?: number;
}

/** `companies({id})/{set}?$select…`, relative to an API's service root (as `$batch` operations want it). */
function relativeUrl(companyId: string, read: Read, params: ListParams): string {
  const query: string[] = [`$select=${encodeOption(read.select.join(','))}`];
  if (read.expand) query.push(`$expand=${encodeOption(`${read.expand.navigation}($select=${read.expand.select.join(',')})`)}`);
  if (params.filter) query.push(`$filter=${encodeOption(params.filter)}`);
  if (params.orderby) query.push(`$orderby=${encodeOption(params.orderby)}`);
  if (params.top !== undefined) query.push(`$top=${params.top}`);
  return `companies(${companyId})/${read.set}?${query.join('&')}`;
}

/**
 * Splits the keys' terms into `or` filters, each short enough for the URL `urlOf` builds around
 * it and of at most MAX_FILTER_TERMS terms. Duplicate keys are sent once.
 */
function keyFilters(keys: readonly string[], term: (key: string) => string, urlOf: (filter: string) => string): KeyFilter[] {
  const filters: KeyFilter[] = [];
  let current: string[] = [];
  const flush = () => filters.push({ filter: current.join(' or '), keys: current.length });
  for (const key of new Set(keys)) {
    const next = [...current, term(key)];
    const tooLong = next.length > MAX_FILTER_TERMS || urlOf(next.join(' or ')).length > MAX_URL_LENGTH;
    if (tooLong && current.length) {
      flush();
      current = [term(key)];
    } else {
      current = next;
    }
  }
  if (current.length) flush();
  return filters;
}

// ---------------------------------------------------------------------------------------------
// HTTP: one request, its failure classified for the resilience layer.
// ---------------------------------------------------------------------------------------------

type HttpResult = VendorAnswer;

interface ODataList<T> {
  value: T[];
  nextLink: string | null;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** What a request carries besides its method and URL. */
interface Outgoing {
  body?: unknown;
  /** The ETag a write is conditional on (`If-Match`), as Business Central wants on a PATCH or DELETE. */
  ifMatch?: string;
}

interface BatchOperation {
  id: string;
  method: 'GET';
  url: string;
  headers: Record<string, string>;
}

/** The `{"error":{"code","message"}}` of a failed answer, as far as it is there. */
function errorOf(body: unknown): { code: string | null; message: string } {
  const error = isObject(body) && isObject(body.error) ? body.error : null;
  return {
    code: typeof error?.code === 'string' ? error.code : null,
    message: typeof error?.message === 'string' ? error.message : typeof body === 'string' ? body.slice(0, 200) : '',
  };
}

/**
 * What each failed answer means. A 401 gets one new token (the cached one was revoked or expired
 * early); 429 (after its Retry-After), 408 and 5xx (503 after its Retry-After) are worth another
 * try, unless the error is of a family that is the request's own fault (`BadRequest_*`,
 * `Authentication_*`, `Authorization_*`: sending it again gives the same answer); any other
 * 4xx fails.
 */
const BC_STATUSES: StatusTable = [
  { status: 401, verdict: 'refresh-auth' },
  { code: /^(BadRequest|Authentication|Authorization)_/, verdict: 'fail' },
  { status: 429, verdict: 'rate-limited', retryAfter: true },
  { status: 503, verdict: 'retry', retryAfter: true },
  { status: 408, verdict: 'retry' },
  { status: { from: 500, to: 599 }, verdict: 'retry' },
  { verdict: 'fail' },
];

/** A failed answer as the adapter throws it, classified by BC_STATUSES. */
function httpError(status: number, header: (name: string) => string | null, body: unknown): BusinessCentralError {
  const { code, message } = errorOf(body);
  return new BusinessCentralError(
    `HTTP ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`,
    code,
    failureDetails(BC_STATUSES, { status, header }, code),
  );
}

function asList<T>(body: unknown): ODataList<T> {
  if (!isObject(body) || !Array.isArray(body.value)) {
    throw new BusinessCentralError('the answer is not an OData collection', null, { retryable: false });
  }
  // The entities are trusted to have the fields the read selected.
  const nextLink = body['@odata.nextLink'];
  return { value: body.value as T[], nextLink: typeof nextLink === 'string' ? nextLink : null };
}

const isDuplicateKey = (error: unknown) =>
  error instanceof BusinessCentralError && (error.details.status === 409 || error.code === 'Internal_EntityWithSameKeyExists');

/** A write refused because the entity changed since it was read (a stale If-Match). */
const isEntityChanged = (error: BusinessCentralError) => error.code === 'Request_EntityChanged' || error.details.status === 412;

// ---------------------------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------------------------

/**
 * The ERP port over Business Central's API v2.0 and the deployment's custom API page (the
 * extension carrying carriers and tracking, serial numbers and warranty, and return orders).
 * Batch methods send one `$filter` of `or` terms per chunk of keys and follow `@odata.nextLink`;
 * "most recent N per customer" reads send one `$top` query per customer inside a `$batch`.
 * Every HTTP request runs through `resilience` (deadline, retries, breaker) and is counted once
 * by `telemetry`.
 */
export function createBusinessCentralConnector(options: BusinessCentralOptions): ErpConnector {
  const { companyId, telemetry, resilience } = options;
  const base = options.baseUrl.replace(/\/+$/, '');
  const roots: Record<Api, string> = {
    standard: `${base}/api/v2.0`,
    extension: `${base}/api/${options.extension.publisher}/${options.extension.group}/${options.extension.version}`,
  };
  const pagePreference = `odata.maxpagesize=${options.maxPageSize ?? DEFAULT_PAGE_SIZE}`;
  const urlOf = (read: Read, params: ListParams) => `${roots[read.api]}/${relativeUrl(companyId, read, params)}`;

  const http = createVendorHttp({
    baseUrl: base,
    auth: {
      authorization: async () => `Bearer ${await options.token()}`,
      ...(options.refreshToken ? { renew: async () => `Bearer ${await options.refreshToken!()}` } : {}),
    },
    statuses: BC_STATUSES,
    errorOf,
    failure: (_request, answer) => httpError(answer.status, answer.header, answer.body),
    noAnswer: (_request, detail, cause) => new BusinessCentralError(`no answer: ${detail}`, null, { retryable: true }, { cause }),
    telemetry,
    resilience,
  });

  /** Sends one HTTP request and reads its answer, whatever the status (a 401 renews the token once). */
  function send(method: Method, url: string, signal: AbortSignal, outgoing: Outgoing = {}): Promise<HttpResult> {
    const headers: Record<string, string> = {};
    if (method === 'GET') headers.prefer = pagePreference;
    if (outgoing.ifMatch !== undefined) headers['if-match'] = outgoing.ifMatch;
    return http.send({ method, url, headers, body: outgoing.body }, signal);
  }

  /** Runs `fn` (one HTTP request) under telemetry, so each request counts once. */
  const counted = http.counted;

  /** One GET of a collection page. */
  async function getList<T>(url: string, signal: AbortSignal): Promise<ODataList<T>> {
    const result = await send('GET', url, signal);
    if (result.status >= 400) throw httpError(result.status, result.header, result.body);
    return asList<T>(result.body);
  }

  /** One GET of an entity by its key: null when Business Central answers 404 Internal_RecordNotFound. */
  async function getEntity<T>(url: string, signal: AbortSignal): Promise<T | null> {
    const result = await send('GET', url, signal);
    if (result.status === 404 && errorOf(result.body).code === 'Internal_RecordNotFound') return null;
    if (result.status >= 400) throw httpError(result.status, result.header, result.body);
    return result.body as T;
  }

  /** A next link is followed only on the API's own origin, so the token never goes elsewhere. */
  const followable = http.followable;

  /** Reads every page of a collection, each page a request of its own (and retried on its own). */
  async function readPages<T>(operation: string, first: ODataList<T> | string, detail: Record<string, unknown>): Promise<T[]> {
    const rows: T[] = [];
    let url: string | null = typeof first === 'string' ? first : null;
    let page: ODataList<T> | null = typeof first === 'string' ? null : first;
    const guard = pagingGuard('erp', operation);
    for (let pageNumber = 1; ; pageNumber += 1) {
      if (!page) {
        const target: string = url!;
        page = await resilience.call(operation, { idempotent: true }, (signal) =>
          counted(operation, { ...detail, page: pageNumber }, () => getList<T>(target, signal)),
        );
      }
      rows.push(...page.value);
      if (!page.nextLink) return rows;
      url = followable(page.nextLink, url ?? roots.standard);
      guard.next(url);
      page = null;
    }
  }

  /**
   * The entities whose `term` matches one of the keys. Keys go in `or` filters short enough for a
   * URL; one filter is a plain GET, several travel together in `$batch` requests, so a page of a
   * hundred orders costs one request, like a page of ten.
   */
  async function readByKeys<T>(operation: string, read: Read, term: (key: string) => string, keys: readonly string[]): Promise<T[]> {
    const filters = keyFilters(keys, term, (filter) => urlOf(read, { filter }));
    if (filters.length <= 1) {
      const chunks = await Promise.all(
        filters.map(({ filter, keys: count }) => readPages<T>(operation, urlOf(read, { filter }), { keys: count })),
      );
      return chunks.flat();
    }
    return readBatched<T>(
      operation,
      read,
      filters.map(({ filter }) => ({ filter })),
    );
  }

  /**
   * The first `top` entities of each key in `orderby` order. OData has no "top N per group", so
   * each key is a query of its own; they travel together in JSON `$batch` requests.
   */
  function readTopPerKey<T>(
    operation: string,
    read: Read,
    term: (key: string) => string,
    keys: readonly string[],
    query: { filter: string | null; orderby: string; top: number },
  ): Promise<T[]> {
    return readBatched<T>(
      operation,
      read,
      [...new Set(keys)].map((key) => ({
        filter: query.filter ? `${term(key)} and ${query.filter}` : term(key),
        orderby: query.orderby,
        top: query.top,
      })),
    );
  }

  /**
   * Reads several queries of one entity set in JSON `$batch` requests of up to 100 operations.
   * A batch holds only reads, so the whole of it is retried when any of its operations was
   * throttled or failed; a query with more than a page continues with plain GETs of its next links.
   */
  async function readBatched<T>(operation: string, read: Read, queries: readonly ListParams[]): Promise<T[]> {
    const batches = slices(queries, MAX_BATCH_OPERATIONS).map((chunk) =>
      chunk.map((params, i): BatchOperation => ({
        id: String(i + 1),
        method: 'GET',
        url: relativeUrl(companyId, read, params),
        headers: { prefer: pagePreference },
      })),
    );
    const results = await Promise.all(
      batches.map(async (operations) => {
        const lists = await resilience.call(operation, { idempotent: true }, (signal) =>
          counted(operation, { keys: operations.length, batch: true }, () => sendBatch<T>(read.api, operations, signal)),
        );
        const rows = await Promise.all(lists.map((list) => readPages<T>(operation, list, { keys: 1 })));
        return rows.flat();
      }),
    );
    return results.flat();
  }

  /** One `$batch` request; each operation's answer is classified as a request of its own would be. */
  async function sendBatch<T>(api: Api, operations: BatchOperation[], signal: AbortSignal): Promise<ODataList<T>[]> {
    const result = await send('POST', `${roots[api]}/$batch`, signal, { body: { requests: operations } });
    if (result.status >= 400) throw httpError(result.status, result.header, result.body);
    const responses = isObject(result.body) && Array.isArray(result.body.responses) ? (result.body.responses as unknown[]) : null;
    if (!responses || responses.length !== operations.length) {
      throw new BusinessCentralError('the $batch answer does not hold one response per operation', null, { retryable: false });
    }
    return responses.map((response) => {
      const { status, headers, body } = isObject(response) ? response : {};
      const headerMap = isObject(headers) ? headers : {};
      const header = (name: string) => {
        const found = Object.entries(headerMap).find(([key]) => key.toLowerCase() === name);
        return typeof found?.[1] === 'string' ? found[1] : null;
      };
      if (typeof status !== 'number' || status >= 400) throw httpError(typeof status === 'number' ? status : 502, header, body);
      return asList<T>(body);
    });
  }

  /** The return order with this external document number, read inside a call already under resilience. */
  async function findReturnOrder(externalDocumentNumber: string, signal: AbortSignal): Promise<BcReturnOrder | null> {
    const url = urlOf(READS.returnOrders, { filter: KEYS.returnByExternalDocument(externalDocumentNumber), top: 1 });
    const list = await counted('returnOrderByExternalDocument', {}, () => getList<BcReturnOrder>(url, signal));
    return list.value[0] ?? null;
  }

  /**
   * The sales order with this external document number (upper-cased, as BC keeps it), of one
   * customer or any, read inside a call already under resilience. Business Central does not keep
   * the number unique, so every match is read and the first by number is the one.
   */
  async function findSalesOrder(key: string, customerId: string | null, signal: AbortSignal): Promise<BcSalesOrder | null> {
    const byDocument = KEYS.salesOrderByExternalDocument(key);
    const filter = customerId === null ? byDocument : `${byDocument} and ${KEYS.ordersOfCustomer(customerId)}`;
    const url = urlOf(READS.orders, { filter, orderby: 'number asc' });
    const list = await counted('salesOrderByExternalDocument', {}, () => getList<BcSalesOrder>(url, signal));
    return firstWithDocument(list.value, key);
  }

  /** The codes of the tax areas customers point to without a display name, by tax area id. */
  async function taxAreaCodes(rows: readonly BcCustomer[], operation = 'customersByIds'): Promise<Map<string, string>> {
    const ids = rows.flatMap((row) => {
      const id = guid(row.taxAreaId);
      return id && !text(row.taxAreaDisplayName) ? [id] : [];
    });
    if (!ids.length) return new Map();
    const areas = await readByKeys<BcTaxArea>(operation, READS.taxAreas, KEYS.taxAreaId, ids);
    return new Map(areas.map((area) => [area.id.toLowerCase(), area.code]));
  }

  async function toCustomers(rows: readonly BcCustomer[], operation: string): Promise<ErpCustomerRecord[]> {
    const codes = await taxAreaCodes(rows, operation);
    return rows.map((row) => toCustomer(row, codes));
  }

  /** Every page of a collection, read inside a call already under resilience. */
  async function getAll<T>(operation: string, url: string, signal: AbortSignal): Promise<T[]> {
    const rows: T[] = [];
    const guard = pagingGuard('erp', operation);
    for (let next: string | null = url; next !== null;) {
      const target: string = next;
      const page = await counted(operation, {}, () => getList<T>(target, signal));
      rows.push(...page.value);
      next = page.nextLink ? followable(page.nextLink, target) : null;
      if (next) guard.next(next);
    }
    return rows;
  }

  /** The customer reference (extension) holding this CRM reference, read inside a call under resilience. */
  async function findReference(operation: string, reference: string, signal: AbortSignal): Promise<BcCustomerReference | null> {
    const url = urlOf(READS.customerReferences, { filter: KEYS.crmReference(reference) });
    const rows = await getAll<BcCustomerReference>(operation, url, signal);
    // Compared exactly: a CRM id differing only in case is another account.
    return (
      rows.filter((row) => row.crmReference === reference).sort((a, b) => bySeriesNumber(a.customerNumber, b.customerNumber))[0] ?? null
    );
  }

  /**
   * The customer a reference points to, among `known` rows or read by its number, inside a call
   * under resilience; null when it cannot be read.
   */
  async function customerOf(
    operation: string,
    reference: BcCustomerReference,
    known: readonly BcCustomer[],
    signal: AbortSignal,
  ): Promise<BcCustomer | null> {
    const found = known.find((row) => row.number === reference.customerNumber);
    if (found) return found;
    const url = urlOf(READS.customers, { filter: KEYS.customerNumber(reference.customerNumber) });
    return (await getAll<BcCustomer>(operation, url, signal))[0] ?? null;
  }

  /** The customers with this tax registration number (compared by `taxIdKey`), inside a call under resilience. */
  async function findByTaxId(operation: string, taxId: string, signal: AbortSignal): Promise<BcCustomer[]> {
    const spellings = taxIdSpellings(taxId);
    if (!spellings.length) return [];
    const url = urlOf(READS.customers, { filter: anyOf(spellings.map(KEYS.customerTaxId)) });
    const key = taxIdKey(taxId);
    return (await getAll<BcCustomer>(operation, url, signal)).filter((row) => taxIdKey(row.taxRegistrationNumber) === key);
  }

  /** The entity of a code list (payment terms, tax areas) with this code, inside a call under resilience. */
  async function findByCode<T extends { code: string }>(
    operation: string,
    read: Read,
    code: string,
    signal: AbortSignal,
  ): Promise<T | null> {
    const spellings = codeSpellings(code);
    if (!spellings.length) return null;
    const rows = await getAll<T>(operation, urlOf(read, { filter: anyOf(spellings.map(KEYS.code)) }), signal);
    return rows.find((row) => folded(row.code) === folded(code)) ?? null;
  }

  /**
   * Among customers that match a new customer (its tax registration number and name), the one an
   * earlier create made and could not mark with its reference: the last of the series that has no
   * reference. One that has a reference belongs to another CRM account, and is not taken.
   */
  async function findUnreferenced(
    operation: string,
    candidates: readonly BcCustomer[],
    signal: AbortSignal,
  ): Promise<{ customer: BcCustomer; reference: BcCustomerReference } | null> {
    if (!candidates.length) return null;
    const numbers = [...new Set(candidates.map((row) => row.number))];
    const url = urlOf(READS.customerReferences, { filter: anyOf(numbers.map(KEYS.referenceOfCustomer)) });
    const references = new Map((await getAll<BcCustomerReference>(operation, url, signal)).map((row) => [row.customerNumber, row]));
    const unreferenced = candidates
      .filter((row) => {
        const reference = references.get(row.number);
        return reference !== undefined && !text(reference.crmReference);
      })
      .sort((a, b) => bySeriesNumber(b.number, a.number));
    const customer = unreferenced[0];
    return customer ? { customer, reference: references.get(customer.number)! } : null;
  }

  /**
   * Marks a customer with its CRM reference (a PATCH of the extension's page, under If-Match).
   * 'taken' when another customer holds the reference (the extension keeps it unique); a changed
   * customer (a stale ETag) is a retryable failure, so the whole create is looked at again.
   */
  async function writeReference(
    operation: string,
    target: { id: string; etag: string },
    reference: string,
    signal: AbortSignal,
  ): Promise<'written' | 'taken'> {
    const url = `${roots.extension}/companies(${companyId})/${READS.customerReferences.set}(${target.id})`;
    const result = await counted(operation, {}, () =>
      send('PATCH', url, signal, { body: { crmReference: reference }, ifMatch: target.etag }),
    );
    if (result.status < 300) return 'written';
    const error = httpError(result.status, result.header, result.body);
    if (isEntityChanged(error)) {
      throw new BusinessCentralError(
        'the customer changed while its reference was written',
        error.code,
        { retryable: true },
        { cause: error },
      );
    }
    if (isDuplicateKey(error)) return 'taken';
    throw error;
  }

  /** An entity of an extension page keyed by a string: `{set}('{key}')`. */
  const keyedEntity = (set: string, key: string) =>
    `${roots.extension}/companies(${companyId})/${set}(${encodeOption(stringLiteral(key))})`;

  /** The record of a change key and the schedule of the change's subscription, read inside a call under resilience. */
  async function readBillingState(
    operation: string,
    change: BillingChange,
    signal: AbortSignal,
  ): Promise<{ recorded: BcBillingChange | null; schedule: BcBillingSchedule | null }> {
    const [changes, schedules] = await Promise.all([
      getAll<BcBillingChange>(operation, urlOf(READS.billingChanges, { filter: KEYS.changeKey(change.key) }), signal),
      getAll<BcBillingSchedule>(
        operation,
        urlOf(READS.billingSchedules, { filter: KEYS.scheduleOfSubscription(change.subscriptionId) }),
        signal,
      ),
    ]);
    // Compared exactly: a key or subscription id differing only in case is another one.
    return {
      recorded: changes.find((row) => row.changeKey === change.key) ?? null,
      schedule: schedules.find((row) => row.subscriptionId === change.subscriptionId) ?? null,
    };
  }

  /**
   * What a write answered that was refused because the entity changed, exists already or is gone
   * since it was read: 'refused'. Any other failure is thrown.
   */
  function refusal(result: HttpResult): 'refused' {
    const error = httpError(result.status, result.header, result.body);
    if (!error.details.retryable && (isDuplicateKey(error) || isEntityChanged(error) || result.status === 404)) return 'refused';
    throw error;
  }

  /**
   * Records a change key with the schedule version it makes: a POST of a new change record, or a
   * PATCH (under If-Match) of one recorded before with another version. 'refused' when the record
   * exists already (POST) or changed since it was read (PATCH).
   */
  async function writeBillingChange(
    operation: string,
    change: BillingChange,
    recorded: BcBillingChange | null,
    version: number,
    signal: AbortSignal,
  ): Promise<'written' | 'refused'> {
    const result = await counted(operation, {}, () =>
      recorded
        ? send('PATCH', keyedEntity(READS.billingChanges.set, change.key), signal, {
            body: { version },
            ifMatch: recorded['@odata.etag'] ?? '*',
          })
        : send('POST', `${roots.extension}/companies(${companyId})/${READS.billingChanges.set}`, signal, {
            body: { changeKey: change.key, subscriptionId: change.subscriptionId, version },
          }),
    );
    return result.status < 300 ? 'written' : refusal(result);
  }

  /**
   * Writes a change to the schedule at `version`: a POST when there was none, a PATCH under the
   * ETag it was read with otherwise. The schedule as written, or null when the write was refused
   * (created, changed or deleted by another write since the read).
   */
  async function writeBillingSchedule(
    operation: string,
    change: BillingChange,
    current: BcBillingSchedule | null,
    version: number,
    signal: AbortSignal,
  ): Promise<BcBillingSchedule | null> {
    const body = toScheduleBody(change, current, version);
    const result = await counted(operation, {}, () =>
      current
        ? send('PATCH', keyedEntity(READS.billingSchedules.set, current.subscriptionId), signal, {
            body,
            ifMatch: current['@odata.etag'] ?? '*',
          })
        : send('POST', `${roots.extension}/companies(${companyId})/${READS.billingSchedules.set}`, signal, { body }),
    );
    if (result.status < 300) return result.body as BcBillingSchedule;
    refusal(result);
    return null;
  }

  /** Whether a change record of another key names this version of the subscription's schedule. */
  async function versionTakenByAnother(operation: string, change: BillingChange, version: number, signal: AbortSignal): Promise<boolean> {
    const filter = `${KEYS.changesOfSubscription(change.subscriptionId)} and version eq ${version}`;
    const rows = await getAll<BcBillingChange>(operation, urlOf(READS.billingChanges, { filter }), signal);
    return rows.some((row) => row.subscriptionId === change.subscriptionId && row.version === version && row.changeKey !== change.key);
  }

  async function customersByIds(ids: readonly string[]): Promise<ErpCustomerRecord[]> {
    return toCustomers(await readByKeys<BcCustomer>('customersByIds', READS.customers, KEYS.customerNumber, ids), 'customersByIds');
  }

  // The company's local currency: asked once, as it does not change while the company exists.
  let localCurrency: Promise<string> | null = null;
  function companyCurrency(): Promise<string> {
    localCurrency ??= readPages<{ currencyCode: string }>('companyInformation', urlOf(READS.companyInformation, {}), {}).then((rows) => {
      const code = text(rows[0]?.currencyCode);
      if (!code) throw new BusinessCentralError('the company has no local currency code', null, { retryable: false });
      return code;
    });
    localCurrency.catch(() => (localCurrency = null));
    return localCurrency;
  }

  async function toReturnOrders(rows: BcReturnOrder[]): Promise<ReturnOrderRecord[]> {
    const lcy = rows.some((row) => !row.currencyCode) ? await companyCurrency() : '';
    return rows.map((row) => toReturnOrder(row, lcy));
  }

  /** The port's records of the entities the change feed read, with their ids and modification times. */
  async function toChangedRecords(kind: ErpChangeKind, rows: readonly BcChanged[], operation: string): Promise<ErpChangedRecord[]> {
    const common = (row: BcChanged) => ({ erpId: guid(row.id) ?? row.id, lastModified: dateTime(row.lastModifiedDateTime) });
    switch (kind) {
      case 'customer': {
        const customers = await toCustomers(rows as unknown as BcCustomer[], operation);
        return rows.map((row, i) => ({ ...common(row), kind, record: customers[i]! }));
      }
      case 'order':
        return rows.map((row) => ({ ...common(row), kind, record: toOrder(row as unknown as BcSalesOrder) }));
      case 'shipment':
        return rows.map((row) => ({ ...common(row), kind, record: toShipment(row as unknown as BcShipment) }));
      case 'invoice':
        return rows.map((row) => ({ ...common(row), kind, record: toInvoice(row as unknown as BcInvoice) }));
    }
  }

  return {
    customersByIds,
    async changedRecordsByErpIds<K extends ErpChangeKind>(kind: K, ids: readonly string[]) {
      const keys = ids.map((id) => guid(id)).filter((id): id is string => id !== null);
      if (!keys.length) return [];
      const operation = 'changedRecordsByErpIds';
      const rows = await readByKeys<BcChanged>(operation, CHANGE_READS[kind], KEYS.systemId, keys);
      return (await toChangedRecords(kind, rows, operation)) as ErpChangedRecordOf<K>[];
    },
    async changedRecordsAfter<K extends ErpChangeKind>(kind: K, after: string) {
      const operation = 'changedRecordsAfter';
      const url = urlOf(CHANGE_READS[kind], {
        filter: `lastModifiedDateTime gt ${dateTimeLiteral(after)}`,
        orderby: 'lastModifiedDateTime asc',
      });
      const rows = await readPages<BcChanged>(operation, url, { kind });
      return (await toChangedRecords(kind, rows, operation)) as ErpChangedRecordOf<K>[];
    },
    async productsBySkus(skus) {
      if (!skus.length) return [];
      const [rows, lcy] = await Promise.all([readByKeys<BcItem>('productsBySkus', READS.items, KEYS.itemNumber, skus), companyCurrency()]);
      return rows.map((row) => toProduct(row, lcy));
    },
    async ordersByNumbers(numbers) {
      return (await readByKeys<BcSalesOrder>('ordersByNumbers', READS.orders, KEYS.orderNumber, numbers)).map(toOrder);
    },
    async ordersByCustomerIds(customerIds, limit) {
      if (limit <= 0) return [];
      const rows = await readTopPerKey<BcSalesOrder>('ordersByCustomerIds', READS.orders, KEYS.ordersOfCustomer, customerIds, {
        filter: null,
        orderby: RECENT_ORDERS_FIRST,
        top: limit,
      });
      return rows.map(toOrder);
    },
    async orderLinesByOrderNumbers(numbers) {
      const orders = await readByKeys<BcSalesOrderLines>('orderLinesByOrderNumbers', READS.orderLines, KEYS.orderNumber, numbers);
      return orders.flatMap(toOrderLines);
    },
    // The order and its lines are one read (salesOrders with salesOrderLines expanded); its
    // shipments and invoices are read beside it, the products once the lines name them.
    orderGraphsByNumbers(numbers, parts) {
      return composeOrderGraph(this, numbers, parts, async (numbers) => {
        const rows = await readByKeys<BcSalesOrder & BcSalesOrderLines>(
          'orderGraphsByNumbers',
          READS.ordersWithLines,
          KEYS.orderNumber,
          numbers,
        );
        return { orders: rows.map(toOrder), lines: rows.flatMap(toOrderLines) };
      });
    },
    assetGraphsBySerialNumbers(serialNumbers, parts) {
      return composeAssetGraph(this, serialNumbers, parts);
    },
    async shipmentsByIds(ids) {
      return (await readByKeys<BcShipment>('shipmentsByIds', READS.shipments, KEYS.shipmentNumber, ids)).map(toShipment);
    },
    async shipmentsByOrderNumbers(numbers) {
      return (await readByKeys<BcShipment>('shipmentsByOrderNumbers', READS.shipments, KEYS.shipmentsOfOrder, numbers)).map(toShipment);
    },
    async shipmentLinesByShipmentIds(ids) {
      const shipments = await readByKeys<BcSalesShipmentLines>('shipmentLinesByShipmentIds', READS.shipmentLines, KEYS.shipmentNumber, ids);
      return shipments.flatMap(toShipmentLines);
    },
    async assetsBySerialNumbers(serialNumbers) {
      return (await readByKeys<BcSerialNumber>('assetsBySerialNumbers', READS.serialNumbers, KEYS.serialNumber, serialNumbers)).map(
        toAsset,
      );
    },
    async assetsByShipmentIds(ids) {
      return (await readByKeys<BcSerialNumber>('assetsByShipmentIds', READS.serialNumbers, KEYS.serialsOfShipment, ids)).map(toAsset);
    },
    async invoicesByNumbers(numbers) {
      return (await readByKeys<BcInvoice>('invoicesByNumbers', READS.invoices, KEYS.invoiceNumber, numbers)).map(toInvoice);
    },
    async invoicesByOrderNumbers(numbers) {
      return (await readByKeys<BcInvoice>('invoicesByOrderNumbers', READS.invoices, KEYS.invoicesOfOrder, numbers)).map(toInvoice);
    },
    async invoicesByCustomerIds(customerIds, query) {
      if (query.limit <= 0) return [];
      const rows = await readTopPerKey<BcInvoice>('invoicesByCustomerIds', READS.invoices, KEYS.invoicesOfCustomer, customerIds, {
        filter: invoiceConditions(query),
        orderby: RECENT_INVOICES_FIRST,
        top: query.limit,
      });
      return rows.map(toInvoice);
    },
    async returnOrdersByNumbers(numbers) {
      return toReturnOrders(await readByKeys<BcReturnOrder>('returnOrdersByNumbers', READS.returnOrders, KEYS.returnNumber, numbers));
    },
    async returnOrdersByCaseIds(caseIds) {
      return toReturnOrders(await readByKeys<BcReturnOrder>('returnOrdersByCaseIds', READS.returnOrders, KEYS.returnsOfCase, caseIds));
    },
    async returnOrderByExternalDocument(externalDocumentNumber) {
      const row = await resilience.call('returnOrderByExternalDocument', { idempotent: true }, (signal) =>
        findReturnOrder(externalDocumentNumber, signal),
      );
      return row ? ((await toReturnOrders([row]))[0] ?? null) : null;
    },
    async returnLinesByReturnNumbers(numbers) {
      const orders = await readByKeys<BcReturnLines>('returnLinesByReturnNumbers', READS.returnLines, KEYS.returnNumber, numbers);
      return orders.flatMap(toReturnLines);
    },
    async returnedQuantities({ serialNumbers, orderLines }) {
      // OData API pages offer no $apply aggregation: the lines are read and summed here.
      const orders = [...new Set(orderLines.map((line) => line.orderNumber))];
      const [bySerial, byOrder] = await Promise.all([
        readByKeys<BcReturnedBySerial>('returnedQuantities', READS.returnedBySerial, KEYS.returnedSerial, serialNumbers),
        readByKeys<BcReturnedByOrderLine>('returnedQuantities', READS.returnedByOrderLine, KEYS.returnedOrder, orders),
      ]);
      const bySerialNumber = new Map<string, number>();
      for (const line of bySerial) bySerialNumber.set(line.serialNumber, (bySerialNumber.get(line.serialNumber) ?? 0) + line.quantity);
      const byOrderLine = new Map<string, number>();
      for (const line of byOrder) {
        // Sequence 0 is the blank of an integer field: a line returned without pointing to an order line.
        if (line.orderLineSequence === 0) continue;
        const key = `${line.orderNumber}#${line.orderLineSequence}`;
        byOrderLine.set(key, (byOrderLine.get(key) ?? 0) + line.quantity);
      }
      return { bySerialNumber, byOrderLine };
    },
    async createReturnOrder(order) {
      // A POST is not idempotent by itself: one that committed and then timed out would create a
      // second order when sent again. So the unit retried is "look the external document number
      // up, POST only when it is not there": every try repeats the check, which makes the unit
      // idempotent and safe for the resilience layer to retry on timeouts, resets, 429 and 5xx.
      // A concurrent creator that wins the race makes the POST answer 409
      // (Internal_EntityWithSameKeyExists): the order exists, and is fetched.
      const url = `${roots.extension}/companies(${companyId})/${READS.returnOrders.set}`;
      const created = await resilience.call('createReturnOrder', { idempotent: true }, async (signal) => {
        const existing = await findReturnOrder(order.externalDocumentNumber, signal);
        if (existing) return existing;
        try {
          return await counted('createReturnOrder', { lines: order.lines.length }, async () => {
            const result = await send('POST', url, signal, { body: toReturnOrderBody(order) });
            if (result.status >= 400) throw httpError(result.status, result.header, result.body);
            return result.body as BcReturnOrder;
          });
        } catch (error) {
          if (!isDuplicateKey(error)) throw error;
          const winner = await findReturnOrder(order.externalDocumentNumber, signal);
          if (winner) return winner;
          throw new BusinessCentralError('the return order exists but cannot be read yet', null, { retryable: true }, { cause: error });
        }
      });
      return (await toReturnOrders([created]))[0]!;
    },
    async customersByTaxRegistrationNumbers(taxIds) {
      const keys = new Set(taxIds.map(taxIdKey).filter(Boolean));
      if (!keys.size) return [];
      const operation = 'customersByTaxRegistrationNumbers';
      const spellings = taxIds.filter((taxId) => taxIdKey(taxId)).flatMap(taxIdSpellings);
      const rows = await readByKeys<BcCustomer>(operation, READS.customers, KEYS.customerTaxId, spellings);
      const matching = [
        ...new Map(rows.filter((row) => keys.has(taxIdKey(row.taxRegistrationNumber))).map((row) => [row.id, row])).values(),
      ];
      return toCustomers(matching, operation);
    },
    async customersByNameAndPostalCode(name, postalCode) {
      // The postal code (a Code field) narrows the read; the name is compared here, whatever its case.
      const spellings = codeSpellings(postalCode);
      if (!folded(name) || !spellings.length) return [];
      const operation = 'customersByNameAndPostalCode';
      const rows = await readByKeys<BcCustomerWithPostalCode>(operation, READS.customersWithPostalCode, KEYS.customerPostalCode, spellings);
      const matching = rows.filter((row) => folded(row.displayName) === folded(name) && folded(row.postalCode) === folded(postalCode));
      return toCustomers(matching, operation);
    },
    async customerByReference(reference) {
      if (!reference) return null;
      const found = await resilience.call('customerByReference', { idempotent: true }, (signal) =>
        findReference('customerByReference', reference, signal),
      );
      return found ? ((await customersByIds([found.customerNumber]))[0] ?? null) : null;
    },
    async createCustomer(customer) {
      // As with orders, the unit retried is "look for the customer, POST only when there is none".
      // The reference is written right after the POST; a POST that committed and then timed out
      // (or a reference write that was lost) leaves a customer without one. Such a customer is
      // found by its tax registration number and name, and is given the reference rather than
      // made again. Business Central keeps neither unique, so nothing else stops a second one.
      const operation = 'createCustomer';
      const { reference } = customer;
      if (!reference.trim()) throw new RangeError('A customer reference must not be blank.');
      const url = `${roots.standard}/companies(${companyId})/${READS.customers.set}?$expand=${READS.customers.expand.navigation}`;
      const created = await resilience.call(operation, { idempotent: true }, async (signal): Promise<BcCustomer> => {
        const [referenced, sameTaxId, terms, area] = await Promise.all([
          findReference(operation, reference, signal),
          findByTaxId(operation, customer.taxRegistrationNumber, signal),
          findByCode<BcPaymentTerm>(operation, READS.paymentTerms, customer.paymentTermsCode, signal),
          findByCode<BcTaxArea>(operation, READS.taxAreas, customer.taxArea, signal),
        ]);
        const earlier = referenced ? await customerOf(operation, referenced, sameTaxId, signal) : null;
        if (earlier) return earlier;
        // Another create for the same reference won a race to write it: its customer is the one.
        const winner = async () => {
          const holder = await findReference(operation, reference, signal);
          const row = holder ? await customerOf(operation, holder, [], signal) : null;
          if (row) return row;
          throw new BusinessCentralError('the reference is held by a customer that cannot be read yet', null, { retryable: true });
        };
        const unreferenced = await findUnreferenced(
          operation,
          sameTaxId.filter((row) => folded(row.displayName) === folded(customer.name)),
          signal,
        );
        if (unreferenced) {
          const target = { id: unreferenced.reference.id, etag: unreferenced.reference['@odata.etag'] ?? '*' };
          return (await writeReference(operation, target, reference, signal)) === 'written' ? unreferenced.customer : winner();
        }
        // A customer a tax area cannot be found for could not be taxed: refused rather than made so.
        if (!area)
          throw new BusinessCentralError(`no tax area has the code ${JSON.stringify(customer.taxArea)}`, null, { retryable: false });
        const body = toCustomerBody(customer, { paymentTermsId: terms ? terms.id : null, taxAreaId: area.id });
        const row = await counted(operation, {}, async () => {
          const result = await send('POST', url, signal, { body });
          if (result.status >= 400) throw httpError(result.status, result.header, result.body);
          return result.body as BcCustomer;
        });
        // The customer was made by this POST and nobody else knows it yet: any version of it will do.
        return (await writeReference(operation, { id: row.id, etag: '*' }, reference, signal)) === 'written' ? row : winner();
      });
      return (await toCustomers([created], operation))[0]!;
    },
    async blockCustomer(number) {
      if (!number) return false;
      return resilience.call('blockCustomer', { idempotent: true }, async (signal) => {
        for (let read = 1; ; read += 1) {
          const url = urlOf(READS.customerBlocked, { filter: KEYS.customerNumber(number) });
          const list = await counted('blockCustomer', {}, () => getList<BcCustomerBlocked>(url, signal));
          const row = list.value[0];
          if (!row) return false;
          // Already blocked for everything (by an earlier PATCH whose answer was lost, say): nothing to send.
          if (row.blocked === 'All') return true;
          const target = `${roots.standard}/companies(${companyId})/${READS.customers.set}(${row.id})`;
          const result = await counted('blockCustomer', {}, () =>
            send('PATCH', target, signal, { body: { blocked: 'All' }, ifMatch: row['@odata.etag'] ?? '*' }),
          );
          if (result.status < 300) return true;
          const error = httpError(result.status, result.header, result.body);
          if (error.details.retryable) throw error;
          // Deleted between the read and the PATCH.
          if (result.status === 404) return false;
          // Changed since it was read (Request_EntityChanged): read it again and decide on what it is now.
          if (isEntityChanged(error) && read < MAX_BLOCK_READS) continue;
          throw error;
        }
      });
    },
    async billingSchedulesBySubscriptionIds(ids) {
      const wanted = new Set(ids);
      const rows = await readByKeys<BcBillingSchedule>(
        'billingSchedulesBySubscriptionIds',
        READS.billingSchedules,
        KEYS.scheduleOfSubscription,
        ids,
      );
      return rows
        .filter((row) => wanted.has(row.subscriptionId))
        .map(toSchedule)
        .sort((a, b) => (a.subscriptionId < b.subscriptionId ? -1 : a.subscriptionId > b.subscriptionId ? 1 : 0));
    },
    async billingSchedulesByCustomerIds(customerIds) {
      const wanted = new Set(customerIds);
      const rows = await readByKeys<BcBillingSchedule>(
        'billingSchedulesByCustomerIds',
        READS.billingSchedules,
        KEYS.schedulesOfCustomer,
        customerIds,
      );
      return rows
        .filter((row) => wanted.has(row.customerNumber))
        .map(toSchedule)
        .sort(byCustomerAndStart);
    },
    async applyBillingChange(change) {
      // Business Central has no transaction spanning two entities, so the change key and the
      // schedule are written one after the other, the change record first: it names the version
      // the change makes, and a schedule at that version or later has the change applied. The unit
      // retried reads both again, so a write that committed and then timed out is not repeated:
      // a recorded change whose schedule is still below its version has only the schedule write
      // left, and a schedule at the version has nothing left. A change record written after the
      // schedule could not tell a lost answer of the schedule write from a write never made.
      // A write refused with 409 (another write reached the schedule since it was read) reads both
      // again; when the version it named was taken by another change, the record is moved to the
      // next version and the change is written there.
      const operation = 'applyBillingChange';
      // Set while the version the change record names is known to be another change's.
      let displaced = false;
      const row = await resilience.call(operation, { idempotent: true }, async (signal) => {
        for (let read = 1; ; read += 1) {
          const { recorded, schedule } = await readBillingState(operation, change, signal);
          if (recorded && recorded.subscriptionId !== change.subscriptionId) {
            if (schedule) return schedule;
            throw new BusinessCentralError(
              `the change key ${JSON.stringify(change.key)} was applied to subscription ${recorded.subscriptionId}`,
              null,
              { retryable: false },
            );
          }
          // Applied before: the schedule as it is.
          if (recorded && schedule && schedule.version >= recorded.version && !displaced) return schedule;
          if (read > MAX_BILLING_READS) {
            throw new BusinessCentralError('the billing schedule kept changing while the change was applied', null, { retryable: true });
          }
          const version = (schedule?.version ?? 0) + 1;
          if (!recorded || recorded.version !== version) {
            if ((await writeBillingChange(operation, change, recorded, version, signal)) === 'refused') continue;
          }
          displaced = false;
          const written = await writeBillingSchedule(operation, change, schedule, version, signal);
          if (written) return written;
          displaced = await versionTakenByAnother(operation, change, version, signal);
        }
      });
      return toSchedule(row);
    },
    async availableQuantities(skus) {
      const rows = await readByKeys<BcItemInventory>('availableQuantities', READS.inventory, KEYS.itemNumber, skus);
      return new Map(rows.map((row) => [row.number, row.inventory]));
    },
    async salesOrderByExternalDocument(externalDocumentNumber) {
      const key = externalDocumentKey(externalDocumentNumber);
      // A blank filter value would match every order without one; a longer one fits no order.
      if (!key) return null;
      const row = await resilience.call('salesOrderByExternalDocument', { idempotent: true }, (signal) =>
        findSalesOrder(key, null, signal),
      );
      return row ? toOrder(row) : null;
    },
    async createSalesOrder(order) {
      // As with return orders, the unit retried is "look the external document number up, POST
      // only when it is not there", so a POST that committed and then timed out is found by the
      // retry instead of being sent again. Business Central does not keep the number unique, so
      // nothing else stops a second order: the look-up is the guard.
      const key = externalDocumentKey(order.externalDocumentNumber);
      if (!key) {
        throw new RangeError(
          `An external document number must be 1 to ${EXTERNAL_DOCUMENT_LENGTH} characters (got ${JSON.stringify(order.externalDocumentNumber)}).`,
        );
      }
      const body = toSalesOrderBody(order, key);
      // The created order comes back with its lines, so its shipped state is read as any order's is.
      const url = `${roots.standard}/companies(${companyId})/${READS.orders.set}?$expand=${READS.orders.expand.navigation}`;
      const created = await resilience.call('createSalesOrder', { idempotent: true }, async (signal) => {
        const existing = await findSalesOrder(key, order.customerId, signal);
        if (existing) return existing;
        return counted('createSalesOrder', { lines: order.lines.length }, async () => {
          const result = await send('POST', url, signal, { body });
          if (result.status >= 400) throw httpError(result.status, result.header, result.body);
          return result.body as BcSalesOrder;
        });
      });
      return toOrder(created);
    },
    async cancelSalesOrder(number) {
      // The id of an order a DELETE was sent for without a definite answer (a timeout, a reset, a
      // 5xx): when the retry finds no such order, that DELETE is what removed it.
      let unanswered: string | null = null;
      return resilience.call('cancelSalesOrder', { idempotent: true }, async (signal) => {
        let refusal: BusinessCentralError | null = null;
        for (let read = 1; ; read += 1) {
          const url = urlOf(READS.orders, { filter: KEYS.orderNumber(number) });
          const list = await counted('cancelSalesOrder', {}, () => getList<BcSalesOrder>(url, signal));
          const order = list.value[0];
          if (!order) return unanswered ? 'cancelled' : 'not_found';
          // Checked before deleting: Business Central refuses to delete an order once a line shipped.
          if (hasShipped(order)) return 'shipped';
          if (refusal) throw refusal;
          unanswered = order.id;
          const target = `${roots.standard}/companies(${companyId})/${READS.orders.set}(${order.id})`;
          const result = await counted('cancelSalesOrder', {}, () =>
            send('DELETE', target, signal, { ifMatch: order['@odata.etag'] ?? '*' }),
          );
          if (result.status < 300) return 'cancelled';
          const error = httpError(result.status, result.header, result.body);
          if (error.details.retryable) throw error;
          // Answered and refused: this DELETE removed nothing.
          unanswered = null;
          // Deleted by someone else between the read and the DELETE.
          if (result.status === 404) return 'not_found';
          // Changed since it was read (Request_EntityChanged): read it again and decide on what it is now.
          if ((result.status === 409 || result.status === 412) && read < MAX_CANCEL_READS) continue;
          // Refused by the application (a line shipped meanwhile, say): one more read tells which.
          if (result.status === 400 && error.code?.startsWith('Application_') && read < MAX_CANCEL_READS) {
            refusal = error;
            continue;
          }
          throw error;
        }
      });
    },
    async ping() {
      const company = await resilience.call('ping', { idempotent: true }, (signal) =>
        counted('ping', {}, () => getEntity<{ id: string }>(`${roots.standard}/companies(${companyId})?$select=id`, signal)),
      );
      if (!company)
        throw new BusinessCentralError(`company ${companyId} not found`, 'Internal_RecordNotFound', { retryable: false, status: 404 });
    },
    async close() {
      // Requests go through Node's shared fetch dispatcher: the adapter holds no connection of its own.
    },
  };
}
