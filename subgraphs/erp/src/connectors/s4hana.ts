import { randomUUID } from 'node:crypto';
import { chunked } from '../../../../platform/chunks.ts';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../../../platform/errors.ts';
import { pagingGuard } from '../../../../platform/paging.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import { toDecimal } from '../../../../platform/sql.ts';
import { createVendorHttp, failureDetails, type StatusTable, type VendorAnswer } from '../../../../platform/vendor-http.ts';
import type {
  AssetRecord,
  ErpConnector,
  ErpCustomerRecord,
  ErpInvoiceStatus,
  InvoiceListQuery,
  NewCustomer,
  NewSalesOrder,
  InvoiceRecord,
  NewReturnOrder,
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
} from './types.ts';
import { byField, encodeOption, isObject, stringLiteral } from './odata.ts';
import { COVERAGE, ORDER_STATUSES } from './vocabulary.ts';
import { composeAssetGraph, composeOrderGraph } from './graphs.ts';

/**
 * The ERP adapter over SAP S/4HANA Cloud, through its released OData V2 APIs under
 * `/sap/opu/odata/sap/`: API_BUSINESS_PARTNER (A_BusinessPartner, A_Customer and its sales
 * areas), API_PRODUCT_SRV (A_Product), API_SALES_ORDER_SRV (A_SalesOrder with to_Item and the
 * items' schedule lines), API_OUTBOUND_DELIVERY_SRV (A_OutbDeliveryHeader with its items and
 * partners), API_BILLING_DOCUMENT_SRV (A_BillingDocument) and API_CUSTOMER_RETURN_SRV
 * (A_CustomerReturn with to_Item).
 *
 * What the standard APIs lack comes from key-user extensibility, as S/4HANA Cloud extends:
 * custom fields (`YY1_…`, suffixed by the business context: `_cus` customer, `_PRD` product,
 * `_SDH`/`_SDI` sales document header/item, `_BDH` billing document header) and one custom
 * business object (YY1_SERIALNUMBER, served as the OData V2 service YY1_SERIALNUMBER_CDS) for
 * serial numbers and their warranty. Each custom field is named where it is read below.
 *
 * Writes (a sales order, its cancellation, a customer, a return order, a customer's order block)
 * carry a CSRF token fetched with `X-CSRF-Token: Fetch` and every cookie of that answer; a 403
 * `X-CSRF-Token: Required` fetches a new one once. Updates and deletions send the entity's ETag in `If-Match`. Grouped reads and the
 * deep inserts (a sales order with to_Item, a business partner with to_Customer and its address,
 * a customer return with to_Item) travel in multipart `$batch` requests; each inner answer is
 * read, as the outer status says nothing of them. A sales order is cancelled by deleting it
 * (`DELETE A_SalesOrder('…')`), as the embedded ERP and Business Central do, once no item has
 * been delivered.
 *
 * Billing schedules, subscription billing changes and the change feed are not served: they
 * reject with a ConnectorError.
 * Stock on hand comes from API_MATERIAL_STOCK_SRV (unrestricted-use stock).
 */
export interface S4HanaOptions {
  /** The tenant's API host: `https://my123456-api.s4hana.cloud.sap`. */
  baseUrl: string;
  /** An OAuth 2.0 client-credentials access token (platform/oauth.ts), fetched and cached by the caller. */
  token?: () => Promise<string>;
  /** A fresh token after a 401; tried once per request. */
  refreshToken?: () => Promise<string>;
  /** A communication user, instead of a token. */
  basic?: { user: string; password: string };
  /** The company code's currency, in which product prices are kept. */
  companyCurrency: string;
  telemetry: ConnectorTelemetry;
  resilience: Resilience;
}

/** An S/4HANA call that failed, with the error code it answered (`/IWBEP/CM_MGW_RT/020`, …) or null. */
export class S4HanaError extends SystemCallError {
  override name = 'S4HanaError';
  constructor(
    message: string,
    readonly code: string | null,
    details: { retryable: boolean; retryAfterMs?: number | undefined; status?: number | undefined },
    options?: { cause?: unknown },
  ) {
    super(message, details, options);
  }
}

const MAX_URL_LENGTH = 1_800;
const MAX_FILTER_TERMS = 40;
/** GETs in one `$batch` request. */
const MAX_BATCH_OPERATIONS = 50;

type Service =
  | 'API_BUSINESS_PARTNER'
  | 'API_PRODUCT_SRV'
  | 'API_SALES_ORDER_SRV'
  | 'API_OUTBOUND_DELIVERY_SRV'
  | 'API_BILLING_DOCUMENT_SRV'
  | 'API_CUSTOMER_RETURN_SRV'
  | 'API_MATERIAL_STOCK_SRV'
  | 'YY1_SERIALNUMBER_CDS';

interface Read {
  service: Service;
  set: string;
  select?: readonly string[];
  expand?: readonly string[];
}

const READS = {
  customers: {
    service: 'API_BUSINESS_PARTNER',
    set: 'A_BusinessPartner',
    expand: ['to_Customer', 'to_Customer/to_CustomerSalesArea'],
  },
  /** The customer's CRM account is a custom field (`YY1_CRMReference_cus`); the tax number is the standard VATRegistration. */
  customerKeys: {
    service: 'API_BUSINESS_PARTNER',
    set: 'A_Customer',
    select: ['Customer', 'VATRegistration', 'YY1_CRMReference_cus'],
  },
  addresses: { service: 'API_BUSINESS_PARTNER', set: 'A_BusinessPartnerAddress', select: ['BusinessPartner', 'PostalCode'] },
  /** Unrestricted-use stock (InventoryStockType 01), per plant and storage location. */
  stock: {
    service: 'API_MATERIAL_STOCK_SRV',
    set: 'A_MatlStkInAcctMod',
    select: ['Material', 'InventoryStockType', 'MatlWrhsStkQtyInMatlBaseUnit'],
  },
  customerBlock: { service: 'API_BUSINESS_PARTNER', set: 'A_Customer', select: ['Customer', 'OrderIsBlockedForCustomer'] },
  products: { service: 'API_PRODUCT_SRV', set: 'A_Product', expand: ['to_Description', 'to_ProductBasicText', 'to_Plant'] },
  orders: { service: 'API_SALES_ORDER_SRV', set: 'A_SalesOrder' },
  orderLines: { service: 'API_SALES_ORDER_SRV', set: 'A_SalesOrder', expand: ['to_Item', 'to_Item/to_ScheduleLine'] },
  deliveries: {
    service: 'API_OUTBOUND_DELIVERY_SRV',
    set: 'A_OutbDeliveryHeader',
    expand: ['to_DeliveryDocumentItem', 'to_DeliveryDocumentPartner'],
  },
  deliveryItems: {
    service: 'API_OUTBOUND_DELIVERY_SRV',
    set: 'A_OutbDeliveryItem',
    select: ['DeliveryDocument', 'ReferenceSDDocument'],
  },
  serialNumbers: { service: 'YY1_SERIALNUMBER_CDS', set: 'YY1_SERIALNUMBER' },
  invoices: { service: 'API_BILLING_DOCUMENT_SRV', set: 'A_BillingDocument', expand: ['to_Item'] },
  invoiceItems: { service: 'API_BILLING_DOCUMENT_SRV', set: 'A_BillingDocumentItem', select: ['BillingDocument', 'SalesDocument'] },
  returns: { service: 'API_CUSTOMER_RETURN_SRV', set: 'A_CustomerReturn' },
  returnLines: { service: 'API_CUSTOMER_RETURN_SRV', set: 'A_CustomerReturn', expand: ['to_Item'] },
  returnItems: {
    service: 'API_CUSTOMER_RETURN_SRV',
    set: 'A_CustomerReturnItem',
    select: [
      'CustomerReturn',
      'CustomerReturnItem',
      'RequestedQuantity',
      'ReferenceSDDocument',
      'ReferenceSDDocumentItem',
      'YY1_SerialNumber_SDI',
    ],
  },
} as const satisfies Record<string, Read>;

// ---------------------------------------------------------------------------------------------
// Wire shapes (OData V2 JSON): decimals as strings, dates as `/Date(ms)/`, blanks as "".
// ---------------------------------------------------------------------------------------------

interface Metadata {
  __metadata?: { uri?: string; type?: string; etag?: string };
}
type Many<T> = { results: T[] };

interface S4SalesArea {
  Currency: string;
  CustomerPaymentTerms: string;
}
interface S4Customer extends Metadata {
  Customer: string;
  CustomerName: string;
  VATRegistration: string;
  OrderIsBlockedForCustomer: string;
  DeliveryIsBlocked: string;
  BillingIsBlockedForCustomer: string;
  /** Custom fields: credit management and receivables are other applications; the tax area is the deployment's. */
  YY1_CreditLimit_cus: string;
  YY1_BalanceDue_cus: string;
  YY1_TaxArea_cus: string;
  /** Custom field: the payment terms' name (the key's text is configuration, not served by a released API). */
  YY1_PaymentTermsName_cus: string;
  to_CustomerSalesArea?: Many<S4SalesArea>;
}
interface S4BusinessPartner extends Metadata {
  BusinessPartner: string;
  BusinessPartnerUUID: string;
  to_Customer?: S4Customer | null;
}
interface S4Product {
  Product: string;
  ProductGroup: string;
  /** Custom fields: the list price (pricing conditions are not on the product) and the warranty. */
  YY1_UnitPrice_PRD: string;
  YY1_WarrantyMonths_PRD: string;
  to_Description?: Many<{ Language: string; ProductDescription: string }>;
  to_ProductBasicText?: Many<{ Language: string; LongText: string }>;
  to_Plant?: Many<{ Plant: string; SerialNumberProfile: string }>;
}
interface S4SalesOrder {
  SalesOrder: string;
  SalesOrderDate: string;
  SoldToParty: string;
  PurchaseOrderByCustomer: string;
  RequestedDeliveryDate: string | null;
  TransactionCurrency: string;
  /** 'A' nothing delivered, 'B' partly, 'C' completely. */
  OverallDeliveryStatus: string;
  /** Custom field: the order's release state (Draft, In Review, Open); S/4HANA has no draft state on its API. */
  YY1_ReleaseStatus_SDH: string;
  /** Custom field: the total including tax (A_SalesOrder has only TotalNetAmount). */
  YY1_TotalGrossAmount_SDH: string;
  to_Item?: Many<S4SalesOrderItem>;
}
interface S4SalesOrderItem {
  SalesOrderItem: string;
  Material: string;
  SalesOrderItemText: string;
  RequestedQuantity: string;
  NetPriceAmount: string;
  NetAmount: string;
  to_ScheduleLine?: Many<{ ScheduleLine: string; ConfirmedDeliveryDate: string | null; DeliveredQtyInOrderQtyUnit: string }>;
}
interface S4Delivery {
  DeliveryDocument: string;
  SoldToParty: string;
  ActualGoodsMovementDate: string;
  ProofOfDeliveryDate: string | null;
  /** The carrier's tracking number. */
  BillOfLading: string;
  to_DeliveryDocumentItem?: Many<{
    DeliveryDocumentItem: string;
    Material: string;
    ActualDeliveryQuantity: string;
    ReferenceSDDocument: string;
  }>;
  /** The carrier is the forwarding agent partner (function SP). */
  to_DeliveryDocumentPartner?: Many<{ PartnerFunction: string; Supplier: string }>;
}
interface S4SerialNumber {
  SerialNumber: string;
  Product: string;
  Customer: string;
  SalesOrder: string;
  DeliveryDocument: string;
  WarrantyStartDate: string;
  WarrantyEndDate: string;
  WarrantyCode: string;
}
interface S4BillingDocument {
  BillingDocument: string;
  BillingDocumentDate: string;
  SoldToParty: string;
  TransactionCurrency: string;
  TotalNetAmount: string;
  TotalTaxAmount: string;
  BillingDocumentIsCancelled: boolean;
  /** 'C' posted to accounting; anything else is not released yet. */
  AccountingPostingStatus: string;
  /** 'C' cleared (paid). */
  InvoiceClearingStatus: string;
  /** Custom fields: the due date, the open amount and the clearing date live in accounting (FI). */
  YY1_NetDueDate_BDH: string;
  YY1_OpenAmount_BDH: string;
  YY1_ClearingDate_BDH: string | null;
  to_Item?: Many<{ SalesDocument: string }>;
}
interface S4CustomerReturn extends Metadata {
  CustomerReturn: string;
  SoldToParty: string;
  /** The external document number (the idempotency key). */
  PurchaseOrderByCustomer: string;
  TransactionCurrency: string;
  CreationDate: string;
  CreationTime: string;
  /** 'A' open (authorized), 'B' in process (received), 'C' completed (closed). */
  OverallSDProcessStatus: string;
  /** Custom fields: the support case and the resolution asked for. */
  YY1_SupportCase_SDH: string;
  YY1_ReturnResolution_SDH: string;
  to_Item?: Many<S4CustomerReturnItem>;
}
interface S4CustomerReturnItem {
  CustomerReturn: string;
  CustomerReturnItem: string;
  Material: string;
  RequestedQuantity: string;
  NetPriceAmount: string;
  ReturnReason: string;
  ReferenceSDDocument: string;
  ReferenceSDDocumentItem: string;
  /** Custom field: the serial number returned. */
  YY1_SerialNumber_SDI: string;
}

/** Return reasons, as the deployment configured them. */
const RETURN_REASONS: Readonly<Record<ReturnReason, string>> = {
  DEFECTIVE: '101',
  DAMAGED_IN_TRANSIT: '102',
  WRONG_ITEM: '103',
  NOT_AS_DESCRIBED: '104',
  OTHER: '105',
};
const REASON_OF: Readonly<Record<string, ReturnReason>> = Object.fromEntries(
  Object.entries(RETURN_REASONS).map(([reason, code]) => [code, reason as ReturnReason]),
);
const RETURN_STATUS_OF: Readonly<Record<string, ReturnStatus>> = { A: 'AUTHORIZED', B: 'RECEIVED', C: 'CLOSED' };

const text = (value: string | null | undefined): string | null => (value ? value : null);
const decimal = (value: string | null | undefined): string => toDecimal(Number(value ?? 0));
const quantity = (value: string | null | undefined): number => Number(value ?? 0);

/** `/Date(1700000000000)/` (or with an offset) as an ISO date; null for null. */
function v2Date(value: string | null | undefined): string | null {
  const ms = v2Ms(value);
  return ms === null ? null : new Date(ms).toISOString().slice(0, 10);
}
function v2Ms(value: string | null | undefined): number | null {
  const match = value ? /^\/Date\((-?\d+)(?:[+-]\d{4})?\)\/$/.exec(value) : null;
  return match ? Number(match[1]) : null;
}
/** An Edm.DateTime literal for a filter. */
function dateTimeLiteral(date: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new TypeError(`Not a date: ${date}`);
  return `datetime'${date}T00:00:00'`;
}
/** An Edm.Time (`PT14H03M27S`) as `HH:MM:SS`. */
function v2Time(value: string): string {
  const match = /^PT(\d+)H(\d+)M(\d+)S$/.exec(value);
  return match ? `${match[1]!.padStart(2, '0')}:${match[2]!.padStart(2, '0')}:${match[3]!.padStart(2, '0')}` : '00:00:00';
}
const cents = (value: string) => Math.round(Number(value) * 100);

function toCustomer(row: S4BusinessPartner): ErpCustomerRecord | null {
  const customer = row.to_Customer;
  if (!customer) return null;
  const area = customer.to_CustomerSalesArea?.results[0];
  return {
    id: customer.Customer,
    erpId: row.BusinessPartnerUUID,
    name: customer.CustomerName,
    currency: area?.Currency ?? '',
    paymentTerms: text(customer.YY1_PaymentTermsName_cus),
    taxRegistrationNumber: text(customer.VATRegistration),
    creditLimit: decimal(customer.YY1_CreditLimit_cus),
    creditHold: Boolean(customer.OrderIsBlockedForCustomer || customer.DeliveryIsBlocked || customer.BillingIsBlockedForCustomer),
    taxArea: text(customer.YY1_TaxArea_cus),
    balanceDue: decimal(customer.YY1_BalanceDue_cus),
  };
}

function toProduct(row: S4Product, currency: string): ProductRecord {
  const english = <T extends { Language: string }>(list: Many<T> | undefined) =>
    list?.results.find((entry) => entry.Language === 'EN') ?? list?.results[0];
  const months = Number(row.YY1_WarrantyMonths_PRD || 0);
  return {
    sku: row.Product,
    name: english(row.to_Description)?.ProductDescription ?? row.Product,
    description: text(english(row.to_ProductBasicText)?.LongText),
    category: text(row.ProductGroup),
    unitPrice: decimal(row.YY1_UnitPrice_PRD),
    currency,
    serialized: (row.to_Plant?.results ?? []).some((plant) => Boolean(plant.SerialNumberProfile)),
    warrantyMonths: months > 0 ? months : null,
  };
}

function toOrder(row: S4SalesOrder): OrderRecord {
  const status: OrderStatus =
    row.OverallDeliveryStatus === 'C'
      ? 'SHIPPED'
      : row.OverallDeliveryStatus === 'B'
        ? 'PARTIALLY_SHIPPED'
        : (ORDER_STATUSES[row.YY1_ReleaseStatus_SDH] ?? 'OPEN');
  return {
    number: row.SalesOrder,
    // A_SalesOrder has no GUID on the V2 API: the document number is S/4HANA's own id.
    erpId: row.SalesOrder,
    orderDate: v2Date(row.SalesOrderDate) ?? '',
    status,
    customerId: row.SoldToParty,
    customerPurchaseOrder: text(row.PurchaseOrderByCustomer),
    requestedDeliveryDate: v2Date(row.RequestedDeliveryDate),
    currency: row.TransactionCurrency,
    totalIncludingTax: decimal(row.YY1_TotalGrossAmount_SDH),
  };
}

function toOrderLines(row: S4SalesOrder): OrderLineRecord[] {
  return (row.to_Item?.results ?? [])
    .map((item): OrderLineRecord => {
      const schedule = item.to_ScheduleLine?.results ?? [];
      return {
        orderNumber: row.SalesOrder,
        sequence: Number(item.SalesOrderItem),
        sku: text(item.Material),
        description: text(item.SalesOrderItemText),
        quantity: quantity(item.RequestedQuantity),
        shippedQuantity: schedule.reduce((sum, line) => sum + quantity(line.DeliveredQtyInOrderQtyUnit), 0),
        unitPrice: decimal(item.NetPriceAmount),
        amount: decimal(item.NetAmount),
        currency: row.TransactionCurrency,
        shipmentDate: v2Date(schedule[0]?.ConfirmedDeliveryDate),
      };
    })
    .sort((a, b) => a.sequence - b.sequence);
}

function toShipment(row: S4Delivery): ShipmentRecord {
  return {
    id: row.DeliveryDocument,
    orderNumber: row.to_DeliveryDocumentItem?.results[0]?.ReferenceSDDocument ?? '',
    customerId: row.SoldToParty,
    carrier: text(row.to_DeliveryDocumentPartner?.results.find((partner) => partner.PartnerFunction === 'SP')?.Supplier),
    trackingNumber: text(row.BillOfLading),
    shippedDate: v2Date(row.ActualGoodsMovementDate) ?? '',
    deliveredDate: v2Date(row.ProofOfDeliveryDate),
  };
}

function toShipmentLines(row: S4Delivery): ShipmentLineRecord[] {
  return (row.to_DeliveryDocumentItem?.results ?? [])
    .map((item) => ({
      shipmentId: row.DeliveryDocument,
      sequence: Number(item.DeliveryDocumentItem),
      sku: item.Material,
      quantity: quantity(item.ActualDeliveryQuantity),
    }))
    .sort((a, b) => a.sequence - b.sequence);
}

function toAsset(row: S4SerialNumber): AssetRecord {
  return {
    serialNumber: row.SerialNumber,
    sku: row.Product,
    customerId: row.Customer,
    orderNumber: row.SalesOrder,
    shipmentId: row.DeliveryDocument,
    warrantyStartDate: v2Date(row.WarrantyStartDate) ?? '',
    warrantyEndDate: v2Date(row.WarrantyEndDate) ?? '',
    warrantyCoverage: COVERAGE[row.WarrantyCode] ?? 'STANDARD',
  };
}

function invoiceStatus(row: S4BillingDocument): ErpInvoiceStatus {
  if (row.BillingDocumentIsCancelled) return 'CANCELED';
  if (row.AccountingPostingStatus !== 'C') return 'DRAFT';
  return row.InvoiceClearingStatus === 'C' ? 'PAID' : 'OPEN';
}

function toInvoice(row: S4BillingDocument): InvoiceRecord {
  return {
    number: row.BillingDocument,
    invoiceDate: v2Date(row.BillingDocumentDate) ?? '',
    dueDate: v2Date(row.YY1_NetDueDate_BDH) ?? '',
    customerId: row.SoldToParty,
    orderNumber: text(row.to_Item?.results[0]?.SalesDocument),
    currency: row.TransactionCurrency,
    amount: toDecimal((cents(row.TotalNetAmount) + cents(row.TotalTaxAmount)) / 100),
    balance: decimal(row.YY1_OpenAmount_BDH),
    status: invoiceStatus(row),
    paidDate: v2Date(row.YY1_ClearingDate_BDH),
  };
}

/** The filter of an invoice state, in the billing document's status fields. */
const INVOICE_STATE_FILTERS: Readonly<Record<ErpInvoiceStatus, string>> = {
  CANCELED: 'BillingDocumentIsCancelled eq true',
  DRAFT: "BillingDocumentIsCancelled eq false and AccountingPostingStatus ne 'C'",
  OPEN: "BillingDocumentIsCancelled eq false and AccountingPostingStatus eq 'C' and InvoiceClearingStatus ne 'C'",
  PAID: "BillingDocumentIsCancelled eq false and AccountingPostingStatus eq 'C' and InvoiceClearingStatus eq 'C'",
};

function invoiceConditions(query: InvoiceListQuery): string | null {
  const conditions: string[] = [];
  if (query.status) conditions.push(INVOICE_STATE_FILTERS[query.status]);
  if (query.dueBefore) conditions.push(`YY1_NetDueDate_BDH lt ${dateTimeLiteral(query.dueBefore)}`);
  if (query.dueOnOrAfter) conditions.push(`YY1_NetDueDate_BDH ge ${dateTimeLiteral(query.dueOnOrAfter)}`);
  return conditions.length ? conditions.join(' and ') : null;
}

function toReturnOrder(row: S4CustomerReturn): ReturnOrderRecord {
  return {
    number: row.CustomerReturn,
    externalDocumentNumber: row.PurchaseOrderByCustomer,
    customerId: row.SoldToParty,
    caseId: text(row.YY1_SupportCase_SDH),
    resolution: (text(row.YY1_ReturnResolution_SDH) as ReturnResolution | null) ?? 'REPLACE',
    status: RETURN_STATUS_OF[row.OverallSDProcessStatus] ?? 'AUTHORIZED',
    currency: row.TransactionCurrency,
    createdAt: `${v2Date(row.CreationDate) ?? '1970-01-01'}T${v2Time(row.CreationTime)}Z`,
  };
}

function toReturnLines(row: S4CustomerReturn): ReturnLineRecord[] {
  return (row.to_Item?.results ?? [])
    .map((item): ReturnLineRecord => ({
      returnNumber: row.CustomerReturn,
      sequence: Number(item.CustomerReturnItem),
      sku: item.Material,
      quantity: quantity(item.RequestedQuantity),
      unitPrice: decimal(item.NetPriceAmount),
      reason: REASON_OF[item.ReturnReason] ?? 'OTHER',
      serialNumber: text(item.YY1_SerialNumber_SDI),
      orderNumber: text(item.ReferenceSDDocument),
    }))
    .sort((a, b) => a.sequence - b.sequence);
}

/** The deep insert of a customer return with its items. Items are numbered as the embedded ERP numbers lines. */
function toReturnBody(order: NewReturnOrder): Record<string, unknown> {
  return {
    CustomerReturnType: 'CBAR',
    SoldToParty: order.customerId,
    PurchaseOrderByCustomer: order.externalDocumentNumber,
    TransactionCurrency: order.currency,
    SDDocumentReason: RETURN_REASONS[order.lines[0]?.reason ?? 'OTHER'],
    YY1_SupportCase_SDH: order.caseId,
    YY1_ReturnResolution_SDH: order.resolution,
    to_Item: {
      results: order.lines.map((line, i) => ({
        CustomerReturnItem: String((i + 1) * 10000),
        Material: line.sku,
        RequestedQuantity: String(line.quantity),
        NetPriceAmount: line.unitPrice,
        ReturnReason: RETURN_REASONS[line.reason],
        ReferenceSDDocument: line.orderNumber,
        ReferenceSDDocumentItem: line.orderLineSequence === null ? '' : String(line.orderLineSequence),
        YY1_SerialNumber_SDI: line.serialNumber ?? '',
        /** Custom field: the invoice the returned unit was billed on. */
        YY1_BillingDocument_SDI: line.appliesToInvoiceNumber ?? '',
      })),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// OData V2 query text, errors, `$batch`.
// ---------------------------------------------------------------------------------------------

interface ListParams {
  filter?: string | null;
  orderby?: string;
  top?: number;
}

/** `{set}?$select…`, relative to the service root (as `$batch` operations want it). */
function relativeUrl(read: Read, params: ListParams): string {
  const query: string[] = [];
  if (read.select) query.push(`$select=${encodeOption(read.select.join(','))}`);
  if (read.expand) query.push(`$expand=${encodeOption(read.expand.join(','))}`);
  if (params.filter) query.push(`$filter=${encodeOption(params.filter)}`);
  if (params.orderby) query.push(`$orderby=${encodeOption(params.orderby)}`);
  if (params.top !== undefined) query.push(`$top=${params.top}`);
  return `${read.set}${query.length ? `?${query.join('&')}` : ''}`;
}

/** The `{"error":{"code","message":{"lang","value"}}}` of a failed answer. */
function errorOf(body: unknown): { code: string | null; message: string } {
  const error = isObject(body) && isObject(body.error) ? body.error : null;
  const message = error && isObject(error.message) ? error.message.value : error?.message;
  return {
    code: typeof error?.code === 'string' ? error.code : null,
    message: typeof message === 'string' ? message : typeof body === 'string' ? body.slice(0, 200) : '',
  };
}

/** 401 renews the token once; 429 and 503 after their Retry-After, 408 and 5xx again; any other 4xx fails. */
const S4_STATUSES: StatusTable = [
  { status: 401, verdict: 'refresh-auth' },
  { status: 429, verdict: 'rate-limited', retryAfter: true },
  { status: 503, verdict: 'retry', retryAfter: true },
  { status: 408, verdict: 'retry' },
  { status: { from: 500, to: 599 }, verdict: 'retry' },
  { verdict: 'fail' },
];

function httpError(status: number, header: (name: string) => string | null, body: unknown, where = ''): S4HanaError {
  const { code, message } = errorOf(body);
  return new S4HanaError(
    `HTTP ${status}${where}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`,
    code,
    failureDetails(S4_STATUSES, { status, header }, code),
  );
}

interface V2List<T> {
  results: T[];
  next: string | null;
}

function asList<T>(body: unknown): V2List<T> {
  const d = isObject(body) && isObject(body.d) ? body.d : null;
  if (!d || !Array.isArray(d.results)) throw new S4HanaError('the answer is not an OData V2 collection', null, { retryable: false });
  return { results: d.results as T[], next: typeof d.__next === 'string' ? d.__next : null };
}

/** One inner answer of a `$batch`. */
interface BatchPart {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** One operation of a `$batch`: a GET outside any changeset, or a changeset of writes. */
type BatchOperation = { method: 'GET'; url: string } | { changeset: { method: 'POST' | 'PATCH'; url: string; body: unknown }[] };

/** The longest external document number PurchaseOrderByCustomer (BSTKD) holds. */
const EXTERNAL_DOCUMENT_LENGTH = 35;
/** Reads of an order to cancel: a changed ETag (412) reads it again, up to this many times. */
const MAX_CANCEL_READS = 3;

/** An Edm.DateTime value (`/Date(ms)/`) of an ISO date; null for null. */
const v2DateValue = (date: string | null) => (date ? `/Date(${Date.parse(`${date.slice(0, 10)}T00:00:00Z`)})/` : null);

/** The deep insert of a sales order with its items. Items are numbered as the embedded ERP numbers lines. */
function toSalesOrderBody(order: NewSalesOrder): Record<string, unknown> {
  return {
    SalesOrderType: 'OR',
    SoldToParty: order.customerId,
    PurchaseOrderByCustomer: order.externalDocumentNumber,
    TransactionCurrency: order.currency,
    RequestedDeliveryDate: v2DateValue(order.requestedDeliveryDate),
    YY1_ReleaseStatus_SDH: 'Open',
    to_Item: {
      results: order.lines.map((line, i) => ({
        SalesOrderItem: String((i + 1) * 10000),
        Material: line.sku,
        SalesOrderItemText: line.description ?? '',
        RequestedQuantity: String(line.quantity),
        NetPriceAmount: line.unitPrice,
      })),
    },
  };
}

/** Whether any item of an order has been delivered, in part or in full. */
const hasShipped = (row: S4SalesOrder) =>
  (row.OverallDeliveryStatus !== '' && row.OverallDeliveryStatus !== 'A') ||
  (row.to_Item?.results ?? []).some((item) =>
    (item.to_ScheduleLine?.results ?? []).some((line) => quantity(line.DeliveredQtyInOrderQtyUnit) > 0),
  );

/**
 * The deep insert of a business partner (an organization) in the customer role, with its address
 * and its customer data for the sales area; the CRM reference is the custom field it is found by.
 */
function toBusinessPartnerBody(customer: NewCustomer): Record<string, unknown> {
  const a = customer.address;
  return {
    BusinessPartnerCategory: '2',
    OrganizationBPName1: customer.name,
    to_BusinessPartnerRole: { results: [{ BusinessPartnerRole: 'FLCU01' }] },
    to_BusinessPartnerAddress: {
      results: [
        {
          StreetName: a.street,
          CityName: a.city,
          Region: a.state ?? '',
          PostalCode: a.postalCode,
          Country: a.country,
          to_EmailAddress: { results: [{ EmailAddress: customer.email }] },
          to_PhoneNumber: { results: customer.phone ? [{ PhoneNumber: customer.phone }] : [] },
        },
      ],
    },
    to_Customer: {
      CustomerName: customer.name,
      VATRegistration: customer.taxRegistrationNumber,
      YY1_CRMReference_cus: customer.reference,
      YY1_TaxArea_cus: customer.taxArea,
      to_CustomerSalesArea: {
        results: [
          {
            SalesOrganization: '1710',
            DistributionChannel: '10',
            Division: '00',
            Currency: customer.currency,
            CustomerPaymentTerms: customer.paymentTermsCode,
          },
        ],
      },
    },
  };
}

function batchBody(boundary: string, operations: readonly BatchOperation[]): string {
  const lines: string[] = [];
  for (const operation of operations) {
    lines.push(`--${boundary}`);
    if ('method' in operation) {
      lines.push('Content-Type: application/http', 'Content-Transfer-Encoding: binary', '');
      lines.push(`GET ${operation.url} HTTP/1.1`, 'Accept: application/json', '', '');
    } else {
      const changeset = `changeset_${randomUUID()}`;
      lines.push(`Content-Type: multipart/mixed; boundary=${changeset}`, '');
      operation.changeset.forEach((write, i) => {
        lines.push(`--${changeset}`, 'Content-Type: application/http', 'Content-Transfer-Encoding: binary', `Content-ID: ${i + 1}`, '');
        lines.push(`${write.method} ${write.url} HTTP/1.1`, 'Content-Type: application/json', 'Accept: application/json', '');
        lines.push(JSON.stringify(write.body));
      });
      lines.push(`--${changeset}--`, '');
    }
  }
  lines.push(`--${boundary}--`, '');
  return lines.join('\r\n');
}

const boundaryOf = (contentType: string | null) => /boundary=("?)([^";]+)\1/i.exec(contentType ?? '')?.[2] ?? null;

function splitParts(text: string, boundary: string): string[] {
  const parts = text.split(`--${boundary}`);
  // Before the first delimiter is the preamble; from the closing one (`--`) on, the epilogue.
  return parts.slice(1).filter((part) => !part.startsWith('--'));
}

function splitHead(text: string): { head: string; rest: string } {
  const normalized = text.replace(/^\r?\n/, '');
  const at = normalized.search(/\r?\n\r?\n/);
  if (at < 0) return { head: normalized, rest: '' };
  const gap = /\r?\n\r?\n/.exec(normalized.slice(at))![0].length;
  return { head: normalized.slice(0, at), rest: normalized.slice(at + gap) };
}

function headersOf(head: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of head.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return headers;
}

/** One `application/http` part: its status line, headers and (JSON or text) body. */
function httpPart(text: string): BatchPart {
  const { rest } = splitHead(text);
  const { head, rest: body } = splitHead(rest);
  const [statusLine = '', ...headerLines] = head.split(/\r?\n/);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const trimmed = body.trim();
  let parsed: unknown = trimmed || null;
  try {
    parsed = trimmed ? (JSON.parse(trimmed) as unknown) : null;
  } catch {
    // Not JSON: the text stands.
  }
  return { status, headers: headersOf(headerLines.join('\n')), body: parsed };
}

/** The inner answers of a `$batch` answer, one entry per operation (a changeset's answers as an array). */
function parseBatch(text: string, boundary: string): (BatchPart | BatchPart[])[] {
  return splitParts(text, boundary).map((part) => {
    const { head, rest } = splitHead(part);
    const inner = boundaryOf(headersOf(head)['content-type'] ?? null);
    if (inner && /multipart\/mixed/i.test(head)) return splitParts(rest, inner).map(httpPart);
    return httpPart(part);
  });
}

/** A tax registration number as the port compares it: without spaces, upper-cased. */
const taxIdKey = (value: string | null | undefined) => (value ?? '').replace(/\s+/g, '').toUpperCase();
/** The spellings a tax number (kept as typed) is looked for in; the answer is compared by `taxIdKey`. */
function taxIdSpellings(value: string): string[] {
  const trimmed = value.trim();
  const key = taxIdKey(value);
  return [...new Set([trimmed, trimmed.toUpperCase(), trimmed.toLowerCase(), key, key.toLowerCase()])].filter(Boolean);
}
const folded = (value: string | null | undefined) => (value ?? '').trim().toUpperCase();

const unsupported = (method: string) => async (): Promise<never> => {
  throw new ConnectorError('erp', `S/4HANA adapter: ${method} is not supported`);
};

// ---------------------------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------------------------

export function createS4HanaConnector(options: S4HanaOptions): ErpConnector {
  const { telemetry, resilience } = options;
  const base = options.baseUrl.replace(/\/+$/, '');
  const root = (service: Service) => `${base}/sap/opu/odata/sap/${service}`;
  const urlOf = (read: Read, params: ListParams = {}) => `${root(read.service)}/${relativeUrl(read, params)}`;
  const authorization = async () =>
    options.basic
      ? `Basic ${Buffer.from(`${options.basic.user}:${options.basic.password}`).toString('base64')}`
      : `Bearer ${await options.token!()}`;
  if (!options.basic && !options.token) throw new TypeError('S/4HANA adapter: give a token source or a communication user.');

  const http = createVendorHttp({
    baseUrl: base,
    auth: {
      authorization,
      ...(options.refreshToken ? { renew: async () => `Bearer ${await options.refreshToken!()}` } : {}),
    },
    statuses: S4_STATUSES,
    errorOf,
    failure: (_request, answer) => httpError(answer.status, answer.header, answer.body),
    noAnswer: (_request, detail, cause) => new S4HanaError(`no answer: ${detail}`, null, { retryable: true }, { cause }),
    telemetry,
    resilience,
  });
  const counted = http.counted;

  // The CSRF session: the token and the cookies of the answer that gave it, shared by every service.
  let session: { token: string; cookie: string } | null = null;

  // One token fetch at a time: requests that find the session missing or refused wait for it.
  let fetching: Promise<{ token: string; cookie: string }> | null = null;
  function fetchCsrf(signal: AbortSignal): Promise<{ token: string; cookie: string }> {
    fetching ??= fetchCsrfNow(signal).finally(() => (fetching = null));
    return fetching;
  }

  async function fetchCsrfNow(signal: AbortSignal): Promise<{ token: string; cookie: string }> {
    const answer = await counted('csrfToken', {}, () =>
      http.send({ method: 'GET', url: `${root('API_BUSINESS_PARTNER')}/`, headers: { 'x-csrf-token': 'Fetch' } }, signal),
    );
    if (answer.status >= 400) throw httpError(answer.status, answer.header, answer.body, ' (CSRF token fetch)');
    const token = answer.header('x-csrf-token');
    if (!token) throw new S4HanaError('no CSRF token in the answer', null, { retryable: false });
    // Every cookie is sent back, whatever its name: the token is bound to the session they make.
    const cookie = answer.setCookies.map((value) => value.split(';')[0]!.trim()).join('; ');
    session = { token, cookie };
    return session;
  }

  /** A POST/PATCH with the CSRF token and its cookies; a 403 `X-CSRF-Token: Required` fetches a new token once. */
  async function write(
    request: { method: 'POST' | 'PATCH' | 'DELETE'; url: string; headers?: Record<string, string>; body?: unknown; raw?: string },
    signal: AbortSignal,
  ): Promise<VendorAnswer> {
    const attempt = async (csrf: { token: string; cookie: string }) =>
      http.send(
        {
          ...request,
          headers: { ...request.headers, 'x-csrf-token': csrf.token, ...(csrf.cookie ? { cookie: csrf.cookie } : {}) },
        },
        signal,
      );
    const answer = await attempt(session ?? (await fetchCsrf(signal)));
    if (answer.status !== 403 || answer.header('x-csrf-token')?.toLowerCase() !== 'required') return answer;
    return attempt(await fetchCsrf(signal));
  }

  async function getList<T>(url: string, signal: AbortSignal): Promise<V2List<T>> {
    const answer = await http.send({ method: 'GET', url }, signal);
    if (answer.status >= 400) throw httpError(answer.status, answer.header, answer.body);
    return asList<T>(answer.body);
  }

  /** Every page of a collection, each page a request of its own, the first one given or fetched. */
  async function readPages<T>(operation: string, first: V2List<T> | string, service: Service): Promise<T[]> {
    const rows: T[] = [];
    let url = typeof first === 'string' ? first : `${root(service)}/`;
    let page: V2List<T> | null = typeof first === 'string' ? null : first;
    const guard = pagingGuard('erp', operation);
    for (let pageNumber = 1; ; pageNumber += 1) {
      if (!page) {
        const target = url;
        page = await resilience.call(operation, { idempotent: true }, (signal) =>
          counted(operation, { page: pageNumber }, () => getList<T>(target, signal)),
        );
      }
      rows.push(...page.results);
      if (!page.next) return rows;
      url = http.followable(page.next, url);
      guard.next(url);
      page = null;
    }
  }

  /** One `$batch` of GETs (and changesets); every inner answer must be a success. */
  async function sendBatch(
    service: Service,
    operations: readonly BatchOperation[],
    signal: AbortSignal,
  ): Promise<(BatchPart | BatchPart[])[]> {
    const boundary = `batch_${randomUUID()}`;
    const answer = await write(
      {
        method: 'POST',
        url: `${root(service)}/$batch`,
        headers: { 'content-type': `multipart/mixed; boundary=${boundary}`, accept: 'multipart/mixed' },
        raw: batchBody(boundary, operations),
      },
      signal,
    );
    if (answer.status >= 400) throw httpError(answer.status, answer.header, answer.body, ' ($batch)');
    const answerBoundary = boundaryOf(answer.header('content-type'));
    if (!answerBoundary || typeof answer.body !== 'string') {
      throw new S4HanaError('the $batch answer is not multipart/mixed', null, { retryable: false });
    }
    const parts = parseBatch(answer.body, answerBoundary);
    if (parts.length !== operations.length) {
      throw new S4HanaError(`the $batch answer holds ${parts.length} parts for ${operations.length} operations`, null, {
        retryable: false,
      });
    }
    // The outer 200 says only that the batch was read: each operation answers for itself. A failed
    // changeset answers with one error part in place of its operations.
    parts.forEach((part, i) => {
      for (const inner of Array.isArray(part) ? part : [part]) {
        if (inner.status < 200 || inner.status >= 300) {
          throw httpError(
            inner.status || 502,
            (name) => inner.headers[name.toLowerCase()] ?? null,
            inner.body,
            ` in $batch operation ${i + 1}`,
          );
        }
      }
    });
    return parts;
  }

  /** Several queries of one entity set in `$batch` requests; a query with more than a page continues with GETs. */
  async function readBatched<T>(operation: string, read: Read, queries: readonly ListParams[]): Promise<T[]> {
    const results = await Promise.all(
      chunked(queries, MAX_BATCH_OPERATIONS).map(async (chunk) => {
        const parts = await resilience.call(operation, { idempotent: true }, (signal) =>
          counted(operation, { keys: chunk.length, batch: true }, () =>
            sendBatch(
              read.service,
              chunk.map((params) => ({ method: 'GET' as const, url: relativeUrl(read, params) })),
              signal,
            ),
          ),
        );
        const lists = parts.map((part) => asList<T>((part as BatchPart).body));
        return (await Promise.all(lists.map((list) => readPages<T>(operation, list, read.service)))).flat();
      }),
    );
    return results.flat();
  }

  /** `or` filters of the keys, each short enough for a URL; one filter is a GET, several one `$batch`. */
  function keyFilters(read: Read, keys: readonly string[], term: (key: string) => string): string[] {
    const filters: string[] = [];
    let current: string[] = [];
    for (const key of new Set(keys)) {
      const next = [...current, term(key)];
      if (current.length && (next.length > MAX_FILTER_TERMS || urlOf(read, { filter: next.join(' or ') }).length > MAX_URL_LENGTH)) {
        filters.push(current.join(' or '));
        current = [term(key)];
      } else current = next;
    }
    if (current.length) filters.push(current.join(' or '));
    return filters;
  }

  async function readByKeys<T>(operation: string, read: Read, term: (key: string) => string, keys: readonly string[]): Promise<T[]> {
    const filters = keyFilters(read, keys, term);
    if (!filters.length) return [];
    if (filters.length === 1) return readPages<T>(operation, urlOf(read, { filter: filters[0]! }), read.service);
    return readBatched<T>(
      operation,
      read,
      filters.map((filter) => ({ filter })),
    );
  }

  async function findReturn(externalDocumentNumber: string, signal: AbortSignal): Promise<S4CustomerReturn | null> {
    const url = urlOf(READS.returns, { filter: byField('PurchaseOrderByCustomer')(externalDocumentNumber), top: 1 });
    const list = await counted('returnOrderByExternalDocument', {}, () => getList<S4CustomerReturn>(url, signal));
    return list.results.find((row) => row.PurchaseOrderByCustomer === externalDocumentNumber) ?? null;
  }

  async function findSalesOrder(field: 'PurchaseOrderByCustomer' | 'SalesOrder', key: string, signal: AbortSignal) {
    const read = field === 'SalesOrder' ? READS.orderLines : READS.orders;
    const url = urlOf(read, { filter: byField(field)(key), top: 1 });
    const list = await counted(field === 'SalesOrder' ? 'cancelSalesOrder' : 'salesOrderByExternalDocument', {}, () =>
      getList<S4SalesOrder & Metadata>(url, signal),
    );
    return list.results.find((row) => row[field] === key) ?? null;
  }

  async function findReference(reference: string, signal: AbortSignal): Promise<string | null> {
    const url = urlOf(READS.customerKeys, { filter: byField('YY1_CRMReference_cus')(reference) });
    const list = await counted('customerByReference', {}, () => getList<{ Customer: string; YY1_CRMReference_cus: string }>(url, signal));
    return list.results.find((row) => row.YY1_CRMReference_cus === reference)?.Customer ?? null;
  }

  /** The created entity of a one-operation changeset's answer. */
  function createdOf<T>(parts: (BatchPart | BatchPart[])[], what: string): T {
    const answer = (parts[0] as BatchPart[])[0]!;
    const d = isObject(answer.body) && isObject(answer.body.d) ? answer.body.d : null;
    if (!d) throw new S4HanaError(`the created ${what} was not answered`, null, { retryable: false });
    return d as unknown as T;
  }

  async function customersByIds(operation: string, ids: readonly string[]): Promise<ErpCustomerRecord[]> {
    const rows = await readByKeys<S4BusinessPartner>(operation, READS.customers, byField('BusinessPartner'), ids);
    return rows.map(toCustomer).filter((row): row is ErpCustomerRecord => row !== null);
  }

  const deliveries = async (operation: string, numbers: readonly string[]) =>
    readByKeys<S4Delivery>(operation, READS.deliveries, byField('DeliveryDocument'), numbers);

  return {
    customersByIds: (ids) => customersByIds('customersByIds', ids),
    async productsBySkus(skus) {
      const rows = await readByKeys<S4Product>('productsBySkus', READS.products, byField('Product'), skus);
      return rows.map((row) => toProduct(row, options.companyCurrency));
    },
    async ordersByNumbers(numbers) {
      return (await readByKeys<S4SalesOrder>('ordersByNumbers', READS.orders, byField('SalesOrder'), numbers)).map(toOrder);
    },
    async ordersByCustomerIds(customerIds, limit) {
      if (limit <= 0 || !customerIds.length) return [];
      const queries = [...new Set(customerIds)].map((id) => ({
        filter: byField('SoldToParty')(id),
        orderby: 'SalesOrderDate desc,SalesOrder desc',
        top: limit,
      }));
      return (await readBatched<S4SalesOrder>('ordersByCustomerIds', READS.orders, queries)).map(toOrder);
    },
    async orderLinesByOrderNumbers(numbers) {
      // One request per order set: the items and their schedule lines come expanded.
      return (await readByKeys<S4SalesOrder>('orderLinesByOrderNumbers', READS.orderLines, byField('SalesOrder'), numbers)).flatMap(
        toOrderLines,
      );
    },
    // The order and its items are one read (A_SalesOrder with to_Item expanded); its deliveries
    // and billing documents are read beside it, the products once the items name them.
    orderGraphsByNumbers(numbers, parts) {
      return composeOrderGraph(this, numbers, parts, async (numbers) => {
        const rows = await readByKeys<S4SalesOrder>('orderGraphsByNumbers', READS.orderLines, byField('SalesOrder'), numbers);
        return { orders: rows.map(toOrder), lines: rows.flatMap(toOrderLines) };
      });
    },
    assetGraphsBySerialNumbers(serialNumbers, parts) {
      return composeAssetGraph(this, serialNumbers, parts);
    },
    async shipmentsByIds(ids) {
      return (await deliveries('shipmentsByIds', ids)).map(toShipment);
    },
    async shipmentsByOrderNumbers(numbers) {
      // A delivery names its sales order on its items only: the items first, then their deliveries.
      const items = await readByKeys<{ DeliveryDocument: string }>(
        'shipmentsByOrderNumbers',
        READS.deliveryItems,
        byField('ReferenceSDDocument'),
        numbers,
      );
      const wanted = new Set(numbers);
      const rows = await deliveries(
        'shipmentsByOrderNumbers',
        items.map((item) => item.DeliveryDocument),
      );
      return rows.map(toShipment).filter((row) => wanted.has(row.orderNumber));
    },
    async shipmentLinesByShipmentIds(ids) {
      return (await deliveries('shipmentLinesByShipmentIds', ids)).flatMap(toShipmentLines);
    },
    async assetsBySerialNumbers(serialNumbers) {
      return (await readByKeys<S4SerialNumber>('assetsBySerialNumbers', READS.serialNumbers, byField('SerialNumber'), serialNumbers)).map(
        toAsset,
      );
    },
    async assetsByShipmentIds(ids) {
      return (await readByKeys<S4SerialNumber>('assetsByShipmentIds', READS.serialNumbers, byField('DeliveryDocument'), ids)).map(toAsset);
    },
    async invoicesByNumbers(numbers) {
      return (await readByKeys<S4BillingDocument>('invoicesByNumbers', READS.invoices, byField('BillingDocument'), numbers)).map(toInvoice);
    },
    async invoicesByOrderNumbers(numbers) {
      // As with deliveries: a billing document names its sales order on its items.
      const items = await readByKeys<{ BillingDocument: string }>(
        'invoicesByOrderNumbers',
        READS.invoiceItems,
        byField('SalesDocument'),
        numbers,
      );
      const rows = await readByKeys<S4BillingDocument>(
        'invoicesByOrderNumbers',
        READS.invoices,
        byField('BillingDocument'),
        items.map((item) => item.BillingDocument),
      );
      return rows.map(toInvoice);
    },
    async invoicesByCustomerIds(customerIds, query) {
      if (query.limit <= 0 || !customerIds.length) return [];
      const conditions = invoiceConditions(query);
      const queries = [...new Set(customerIds)].map((id) => ({
        filter: conditions ? `${byField('SoldToParty')(id)} and ${conditions}` : byField('SoldToParty')(id),
        orderby: 'BillingDocumentDate desc,BillingDocument desc',
        top: query.limit,
      }));
      return (await readBatched<S4BillingDocument>('invoicesByCustomerIds', READS.invoices, queries)).map(toInvoice);
    },
    async returnOrdersByNumbers(numbers) {
      return (await readByKeys<S4CustomerReturn>('returnOrdersByNumbers', READS.returns, byField('CustomerReturn'), numbers)).map(
        toReturnOrder,
      );
    },
    async returnOrdersByCaseIds(caseIds) {
      return (await readByKeys<S4CustomerReturn>('returnOrdersByCaseIds', READS.returns, byField('YY1_SupportCase_SDH'), caseIds)).map(
        toReturnOrder,
      );
    },
    async returnOrderByExternalDocument(externalDocumentNumber) {
      const row = await resilience.call('returnOrderByExternalDocument', { idempotent: true }, (signal) =>
        findReturn(externalDocumentNumber, signal),
      );
      return row ? toReturnOrder(row) : null;
    },
    async returnLinesByReturnNumbers(numbers) {
      return (
        await readByKeys<S4CustomerReturn>('returnLinesByReturnNumbers', READS.returnLines, byField('CustomerReturn'), numbers)
      ).flatMap(toReturnLines);
    },
    async returnedQuantities({ serialNumbers, orderLines }) {
      // No aggregation on the API: the return items are read (by serial and by order, together
      // in one $batch) and summed here.
      const orders = [...new Set(orderLines.map((line) => line.orderNumber))];
      const queries = [
        ...keyFilters(READS.returnItems, serialNumbers, byField('YY1_SerialNumber_SDI')).map((filter) => ({ filter, kind: 'serial' })),
        ...keyFilters(READS.returnItems, orders, byField('ReferenceSDDocument')).map((filter) => ({ filter, kind: 'order' })),
      ];
      const bySerialNumber = new Map<string, number>();
      const byOrderLine = new Map<string, number>();
      if (!queries.length) return { bySerialNumber, byOrderLine };
      const rows = await readBatched<S4CustomerReturnItem>('returnedQuantities', READS.returnItems, queries);
      const seen = new Set<string>();
      const serials = new Set(serialNumbers);
      const orderSet = new Set(orders);
      for (const row of rows) {
        // A line found by its serial and by its order is counted once.
        const key = `${row.CustomerReturn}#${row.CustomerReturnItem}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const amount = quantity(row.RequestedQuantity);
        if (row.YY1_SerialNumber_SDI && serials.has(row.YY1_SerialNumber_SDI)) {
          bySerialNumber.set(row.YY1_SerialNumber_SDI, (bySerialNumber.get(row.YY1_SerialNumber_SDI) ?? 0) + amount);
        }
        if (row.ReferenceSDDocumentItem && orderSet.has(row.ReferenceSDDocument)) {
          const line = `${row.ReferenceSDDocument}#${Number(row.ReferenceSDDocumentItem)}`;
          byOrderLine.set(line, (byOrderLine.get(line) ?? 0) + amount);
        }
      }
      return { bySerialNumber, byOrderLine };
    },
    async createReturnOrder(order) {
      // The unit retried is "look the external document number up, create only when it is not
      // there", so a create that committed and then timed out is found by the retry instead of
      // being made again. The customer return and its items are one deep insert in a changeset:
      // all of it is made, or none.
      const created = await resilience.call('createReturnOrder', { idempotent: true }, async (signal) => {
        const existing = await findReturn(order.externalDocumentNumber, signal);
        if (existing) return existing;
        const parts = await counted('createReturnOrder', { lines: order.lines.length }, () =>
          sendBatch(
            'API_CUSTOMER_RETURN_SRV',
            [{ changeset: [{ method: 'POST', url: READS.returns.set, body: toReturnBody(order) }] }],
            signal,
          ),
        );
        const answer = (parts[0] as BatchPart[])[0]!;
        const d = isObject(answer.body) && isObject(answer.body.d) ? answer.body.d : null;
        if (!d) throw new S4HanaError('the created customer return was not answered', null, { retryable: false });
        return d as unknown as S4CustomerReturn;
      });
      return toReturnOrder(created);
    },
    async blockCustomer(number) {
      if (!number) return false;
      return resilience.call('blockCustomer', { idempotent: true }, async (signal) => {
        const url = `${root('API_BUSINESS_PARTNER')}/A_Customer(${encodeOption(stringLiteral(number))})`;
        const read = await counted('blockCustomer', {}, () => http.send({ method: 'GET', url }, signal));
        if (read.status === 404) return false;
        if (read.status >= 400) throw httpError(read.status, read.header, read.body);
        const row = (isObject(read.body) && isObject(read.body.d) ? read.body.d : {}) as Partial<S4Customer>;
        if (row.OrderIsBlockedForCustomer === '01') return true;
        const etag = row.__metadata?.etag ?? read.header('etag') ?? '*';
        const answer = await counted('blockCustomer', {}, () =>
          write(
            {
              method: 'PATCH',
              url,
              headers: { 'if-match': etag },
              body: { OrderIsBlockedForCustomer: '01', DeliveryIsBlocked: '01', BillingIsBlockedForCustomer: '01' },
            },
            signal,
          ),
        );
        if (answer.status >= 400) throw httpError(answer.status, answer.header, answer.body);
        return true;
      });
    },
    async salesOrderByExternalDocument(externalDocumentNumber) {
      if (!externalDocumentNumber.trim()) return null;
      const rows = await readByKeys<S4SalesOrder>('salesOrderByExternalDocument', READS.orders, byField('PurchaseOrderByCustomer'), [
        externalDocumentNumber,
      ]);
      const first = rows.sort((a, b) => (a.SalesOrder < b.SalesOrder ? -1 : 1))[0];
      return first ? toOrder(first) : null;
    },
    async customersByTaxRegistrationNumbers(taxIds) {
      const keys = new Set(taxIds.map(taxIdKey).filter(Boolean));
      if (!keys.size) return [];
      const operation = 'customersByTaxRegistrationNumbers';
      const rows = await readByKeys<{ Customer: string; VATRegistration: string }>(
        operation,
        READS.customerKeys,
        byField('VATRegistration'),
        taxIds.filter((id) => taxIdKey(id)).flatMap(taxIdSpellings),
      );
      const numbers = rows.filter((row) => keys.has(taxIdKey(row.VATRegistration))).map((row) => row.Customer);
      return numbers.length ? customersByIds(operation, numbers) : [];
    },
    async customersByNameAndPostalCode(name, postalCode) {
      // The postal code (on the business partner's address) narrows the read; the name is compared here.
      const code = postalCode.trim();
      if (!folded(name) || !code) return [];
      const operation = 'customersByNameAndPostalCode';
      const addresses = await readByKeys<{ BusinessPartner: string; PostalCode: string }>(
        operation,
        READS.addresses,
        byField('PostalCode'),
        [...new Set([code, code.toUpperCase()])],
      );
      const numbers = addresses.filter((row) => folded(row.PostalCode) === folded(code)).map((row) => row.BusinessPartner);
      if (!numbers.length) return [];
      return (await customersByIds(operation, numbers)).filter((customer) => folded(customer.name) === folded(name));
    },
    async customerByReference(reference) {
      if (!reference) return null;
      const operation = 'customerByReference';
      const rows = await readByKeys<{ Customer: string; YY1_CRMReference_cus: string }>(
        operation,
        READS.customerKeys,
        byField('YY1_CRMReference_cus'),
        [reference],
      );
      // Compared exactly: a CRM id differing only in case is another account.
      const number = rows.find((row) => row.YY1_CRMReference_cus === reference)?.Customer;
      return number ? ((await customersByIds(operation, [number]))[0] ?? null) : null;
    },
    async availableQuantities(skus) {
      const rows = await readByKeys<{ Material: string; InventoryStockType: string; MatlWrhsStkQtyInMatlBaseUnit: string }>(
        'availableQuantities',
        READS.stock,
        byField('Material'),
        skus,
      );
      const onHand = new Map<string, number>();
      for (const row of rows) {
        const unrestricted = row.InventoryStockType === '01' ? quantity(row.MatlWrhsStkQtyInMatlBaseUnit) : 0;
        onHand.set(row.Material, (onHand.get(row.Material) ?? 0) + unrestricted);
      }
      return onHand;
    },
    async createCustomer(customer) {
      // The unit retried is "look the reference up, create only when it is not there". The
      // reference is in the same deep insert as the business partner, so a create that committed
      // and then timed out is found by the retry, never made twice.
      const { reference } = customer;
      if (!reference.trim()) throw new RangeError('A customer reference must not be blank.');
      const operation = 'createCustomer';
      const created = await resilience.call(operation, { idempotent: true }, async (signal): Promise<ErpCustomerRecord | string> => {
        const existing = await findReference(reference, signal);
        if (existing) return existing;
        const parts = await counted(operation, {}, () =>
          sendBatch(
            'API_BUSINESS_PARTNER',
            [{ changeset: [{ method: 'POST', url: READS.customers.set, body: toBusinessPartnerBody(customer) }] }],
            signal,
          ),
        );
        const row = toCustomer(createdOf<S4BusinessPartner>(parts, 'business partner'));
        if (!row) throw new S4HanaError('the created business partner has no customer', null, { retryable: false });
        return row;
      });
      if (typeof created !== 'string') return created;
      const found = (await customersByIds(operation, [created]))[0];
      if (!found) throw new S4HanaError(`customer ${created} holds the reference but cannot be read`, null, { retryable: true });
      return found;
    },
    async createSalesOrder(order) {
      // As with return orders, the unit retried is "look the external document number up, create
      // only when it is not there": a create that committed and then timed out is found by the
      // retry instead of being made again. The order and its items are one deep insert.
      const key = order.externalDocumentNumber;
      if (!key.trim() || key.length > EXTERNAL_DOCUMENT_LENGTH) {
        throw new RangeError(
          `An external document number must be 1 to ${EXTERNAL_DOCUMENT_LENGTH} characters (got ${JSON.stringify(key)}).`,
        );
      }
      const created = await resilience.call('createSalesOrder', { idempotent: true }, async (signal) => {
        const existing = await findSalesOrder('PurchaseOrderByCustomer', key, signal);
        if (existing) return existing;
        const parts = await counted('createSalesOrder', { lines: order.lines.length }, () =>
          sendBatch(
            'API_SALES_ORDER_SRV',
            [{ changeset: [{ method: 'POST', url: READS.orders.set, body: toSalesOrderBody(order) }] }],
            signal,
          ),
        );
        return createdOf<S4SalesOrder>(parts, 'sales order');
      });
      return toOrder(created);
    },
    async cancelSalesOrder(number) {
      if (!number) return 'not_found';
      // An order a DELETE was sent for without a definite answer: when the retry finds no such
      // order, that DELETE is what removed it.
      let unanswered = false;
      return resilience.call('cancelSalesOrder', { idempotent: true }, async (signal) => {
        for (let read = 1; ; read += 1) {
          const order = await findSalesOrder('SalesOrder', number, signal);
          if (!order) return unanswered ? 'cancelled' : 'not_found';
          // Checked before deleting: a delivered item makes it too late.
          if (hasShipped(order)) return 'shipped';
          unanswered = true;
          const url = `${root('API_SALES_ORDER_SRV')}/A_SalesOrder(${encodeOption(stringLiteral(number))})`;
          const answer = await counted('cancelSalesOrder', {}, () =>
            write({ method: 'DELETE', url, headers: { 'if-match': order.__metadata?.etag ?? '*' } }, signal),
          );
          if (answer.status < 300) return 'cancelled';
          const error = httpError(answer.status, answer.header, answer.body);
          if (error.details.retryable) throw error;
          // Answered and refused: this DELETE removed nothing.
          unanswered = false;
          if (answer.status === 404) return 'not_found';
          // Changed since it was read: read it again and decide on what it is now.
          if (answer.status === 412 && read < MAX_CANCEL_READS) continue;
          throw error;
        }
      });
    },
    // Not served by this adapter: no released S/4HANA API (or no extension of this deployment) covers them.
    billingSchedulesBySubscriptionIds: unsupported('billingSchedulesBySubscriptionIds'),
    billingSchedulesByCustomerIds: unsupported('billingSchedulesByCustomerIds'),
    applyBillingChange: unsupported('applyBillingChange'),
    changedRecordsByErpIds: unsupported('changedRecordsByErpIds'),
    changedRecordsAfter: unsupported('changedRecordsAfter'),
    async ping() {
      await readPages(
        'ping',
        urlOf({ service: 'API_BUSINESS_PARTNER', set: 'A_BusinessPartner', select: ['BusinessPartner'] }, { top: 1 }),
        'API_BUSINESS_PARTNER',
      );
    },
    async close() {
      session = null;
    },
  };
}
