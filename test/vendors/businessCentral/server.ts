import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../../platform/sqlite.ts';

/**
 * A small stand-in for Business Central's REST API v2.0 (OData v4) and the deployment's custom
 * API page (the extension with carriers and tracking, serial numbers and warranty, and return
 * orders), answering on 127.0.0.1 in Business Central's wire shapes: `@odata.context`, `value`,
 * `@odata.nextLink` under `Prefer: odata.maxpagesize`, `@odata.etag`, blanks instead of nulls,
 * `{"error":{"code","message"}}` errors. Writes: deep inserts of sales orders (standard API) and
 * return orders (extension), DELETE of a sales order under `If-Match`, customers created from their
 * number series and PATCHed under `If-Match` (standard API), and the CRM reference of a customer
 * PATCHed through the extension's `customerReferences` page, and the Subscription Billing pages
 * (`subscriptionBillingSchedules` keyed by subscription id, `subscriptionBillingChanges` keyed by
 * change key) created by POST and PATCHed under `If-Match`. Its data is loaded from an embedded
 * ERP database, so an adapter reading it can be compared with the embedded adapter reading the
 * database itself.
 * Fault switches and a request log let tests see how the adapter behaves and what it costs.
 */
export interface BusinessCentralServerOptions {
  /** The embedded ERP database to load (read once, at start). */
  erp: Database;
  tenant?: string;
  environment?: string;
  companyId?: string;
  /** The bearer token the server accepts. */
  token?: string;
  /** Where the extension's custom API page is served: `/api/{publisher}/{group}/{version}/…`. */
  extension?: { publisher: string; group: string; version: string };
  /** The company's local currency, as companyInformation reports it. */
  localCurrency?: string;
  /**
   * Each tax area's description, by code, as customers' `taxAreaDisplayName` shows it (Business
   * Central shows the description, not the code); a code not listed is described by itself.
   */
  taxAreaDescriptions?: Record<string, string>;
  /** Longer request URLs are refused with 414. */
  maxUrlLength?: number;
  now?: () => Date;
}

/** One HTTP request the server received (a `$batch` is one request holding several operations). */
export interface RequestLogEntry {
  method: string;
  /** Path and query as received (still percent-encoded). */
  url: string;
  api: 'standard' | 'extension' | null;
  /** The entity set addressed (`salesOrders`), `$batch`, `companies`, or null. */
  entitySet: string | null;
  /** The decoded system query options (`$filter`, `$top`, …). */
  query: Record<string, string>;
  /** The operations of a `$batch` request, as their relative URLs. */
  operations: string[];
  /** The `If-Match` header sent, if any. */
  ifMatch: string | null;
  /** The JSON body sent, parsed; undefined when there was none (or it was not JSON). */
  body: unknown;
  /** The status answered; null when the connection was reset or no answer was sent yet. */
  status: number | null;
  /** The fault switch that shaped the answer, if any. */
  fault: string | null;
}

/**
 * What the next requests suffer. `entityChanged` waits for the next PATCH or DELETE (the requests
 * before it pass) and answers it 409 Request_EntityChanged, as when another user changed the
 * record after it was read.
 */
export type Fault =
  | { kind: 'rateLimit'; retryAfterSeconds: number }
  | { kind: 'serverError'; status?: number }
  | { kind: 'reset' }
  | { kind: 'entityChanged' };

/** Switches that make the server slow, throttled, failing or cut off, as the real one can be. */
export interface FaultSwitches {
  /** Delay before every answer. */
  latencyMs: number;
  /** The next `count` requests, whatever they are, suffer `fault`. */
  failNext(count: number, fault: Fault): void;
  /**
   * The next POST that creates an entity (or, with `method: 'PATCH'` or `'DELETE'`, the next
   * PATCH that updates one or DELETE that removes one), of `entitySet` when it is given, is
   * applied, then its answer is sent after `answerAfterMs`, or never (the connection stays open
   * until the server closes).
   */
  commitThenTimeout(options?: { answerAfterMs?: number; method?: WriteMethod; entitySet?: string }): void;
  /** Back to answering normally. */
  clear(): void;
}

/** A running server. */
export interface BusinessCentralServer {
  /** The environment's API root, as the adapter's `baseUrl`: `http://127.0.0.1:{port}/v2.0/{tenant}/{environment}`. */
  baseUrl: string;
  companyId: string;
  token: string;
  extension: { publisher: string; group: string; version: string };
  /** Every request received, in order. */
  requests: RequestLogEntry[];
  faults: FaultSwitches;
  /** The return orders held, all or those with one external document number (rows as stored). */
  returnOrders(externalDocumentNumber?: string): readonly Row[];
  /**
   * The sales orders held, all or those with one external document number, compared as Business
   * Central compares a Code field (case-insensitively), with their lines (rows as stored).
   */
  salesOrders(externalDocumentNumber?: string): readonly (Row & { lines: readonly Row[] })[];
  /** The customers held, with their `crmReference` (the extension's field; null when none), rows as stored. */
  customers(): readonly Row[];
  /** The billing schedules held, all or the one of a subscription (rows as stored). */
  billingSchedules(subscriptionId?: string): readonly Row[];
  /** The change keys recorded, all or those of a subscription (rows as stored). */
  billingChanges(subscriptionId?: string): readonly Row[];
  /**
   * Changes a record as a user of Business Central would (an order released, a shipment's
   * tracking number set): the fields given, and its lastModifiedDateTime set to now (the `now`
   * option). `table` is the stored table (`salesOrders`, `salesShipments`, …), `id` the record's
   * systemId. Returns the record as stored, and the notification a webhook subscription to its
   * entity set would deliver for it.
   */
  change(table: string, id: string, fields: Row): { row: Row; notification: WebhookNotification };
  /** Deletes a record (a sales order with its lines), and returns the notification of its deletion. */
  remove(table: string, id: string): WebhookNotification;
  close(): Promise<void>;
}

/**
 * One notification of a webhook subscription, as Business Central posts it inside `{"value": [...]}`,
 * without the subscription's own fields (subscriptionId, clientState, expirationDateTime): the
 * caller adds those of the subscription it stands for.
 */
export interface WebhookNotification {
  resource: string;
  changeType: 'created' | 'updated' | 'deleted';
  lastModifiedDateTime: string;
}

type WriteMethod = 'POST' | 'PATCH' | 'DELETE';
type Row = Record<string, unknown>;
type Api = 'standard' | 'extension';

// ---------------------------------------------------------------------------------------------
// The entity model: per API, the entity sets, their fields' EDM types and their navigation.
// ---------------------------------------------------------------------------------------------

type Edm = 'String' | 'Guid' | 'Date' | 'DateTimeOffset' | 'Decimal' | 'Int32' | 'Boolean' | 'Enum';

interface Navigation {
  set: string;
  many: boolean;
  matches: (parent: Row, child: Row) => boolean;
}

interface EntitySet {
  /** The entity type's name, as errors and contexts spell it. */
  type: string;
  /** The in-memory table the entities come from. */
  table: string;
  /** The key field, as `set(key)` addresses an entity: `id` (a GUID) unless named, else a string. */
  key?: string;
  fields: Record<string, Edm>;
  navigation?: Record<string, Navigation>;
  /** Creates an entity from a POST body (only where the API allows it). */
  insert?: (body: Record<string, unknown>, store: Store, now: Date) => Row;
  /** Changes an entity from a PATCH body (only where the API allows it); throws to refuse. */
  update?: (row: Row, body: Record<string, unknown>, store: Store, now: Date) => void;
  /** Deletes an entity, with what belongs to it (only where the API allows it); throws to refuse. */
  remove?: (row: Row, store: Store) => void;
}

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** How Business Central writes a blank of each type: it never sends null for a field. */
const BLANKS: Record<Edm, unknown> = {
  String: '',
  Guid: ZERO_GUID,
  Date: '0001-01-01',
  DateTimeOffset: '0001-01-01T00:00:00Z',
  Decimal: 0,
  Int32: 0,
  Boolean: false,
  Enum: '_x0020_',
};

const byDocument = (parent: Row, child: Row) => child.documentId === parent.id;

const SALES_INVOICE_FIELDS: Record<string, Edm> = {
  id: 'Guid',
  number: 'String',
  invoiceDate: 'Date',
  postingDate: 'Date',
  dueDate: 'Date',
  customerId: 'Guid',
  customerNumber: 'String',
  orderId: 'Guid',
  orderNumber: 'String',
  currencyCode: 'String',
  totalAmountIncludingTax: 'Decimal',
  remainingAmount: 'Decimal',
  status: 'Enum',
  lastModifiedDateTime: 'DateTimeOffset',
};

const SALES_ORDER_FIELDS: Record<string, Edm> = {
  id: 'Guid',
  number: 'String',
  externalDocumentNumber: 'String',
  orderDate: 'Date',
  customerId: 'Guid',
  customerNumber: 'String',
  customerName: 'String',
  currencyCode: 'String',
  requestedDeliveryDate: 'Date',
  totalAmountExcludingTax: 'Decimal',
  totalTaxAmount: 'Decimal',
  totalAmountIncludingTax: 'Decimal',
  fullyShipped: 'Boolean',
  status: 'Enum',
  lastModifiedDateTime: 'DateTimeOffset',
};

const SALES_ORDER_LINE_FIELDS: Record<string, Edm> = {
  id: 'Guid',
  documentId: 'Guid',
  sequence: 'Int32',
  lineType: 'Enum',
  lineObjectNumber: 'String',
  description: 'String',
  quantity: 'Decimal',
  unitPrice: 'Decimal',
  amountExcludingTax: 'Decimal',
  shippedQuantity: 'Decimal',
  shipmentDate: 'Date',
};

const RETURN_ORDER_FIELDS: Record<string, Edm> = {
  id: 'Guid',
  number: 'String',
  customerNumber: 'String',
  externalDocumentNumber: 'String',
  returnReasonCode: 'String',
  status: 'Enum',
  createdDateTime: 'DateTimeOffset',
  caseNumber: 'String',
  resolution: 'String',
  currencyCode: 'String',
};

const RETURN_LINE_FIELDS: Record<string, Edm> = {
  id: 'Guid',
  documentId: 'Guid',
  sequence: 'Int32',
  lineObjectNumber: 'String',
  quantity: 'Decimal',
  unitPrice: 'Decimal',
  returnReasonCode: 'String',
  serialNumber: 'String',
  appliesToInvoiceNumber: 'String',
  orderNumber: 'String',
  orderLineSequence: 'Int32',
};

const CUSTOMER_FIELDS: Record<string, Edm> = {
  id: 'Guid',
  number: 'String',
  displayName: 'String',
  type: 'Enum',
  addressLine1: 'String',
  city: 'String',
  state: 'String',
  country: 'String',
  postalCode: 'String',
  phoneNumber: 'String',
  email: 'String',
  taxRegistrationNumber: 'String',
  currencyCode: 'String',
  paymentTermsId: 'Guid',
  blocked: 'Enum',
  balanceDue: 'Decimal',
  creditLimit: 'Decimal',
  taxLiable: 'Boolean',
  taxAreaId: 'Guid',
  taxAreaDisplayName: 'String',
  lastModifiedDateTime: 'DateTimeOffset',
};

const CUSTOMER_REFERENCE_FIELDS: Record<string, Edm> = { id: 'Guid', customerNumber: 'String', crmReference: 'String' };

const BILLING_SCHEDULE_FIELDS: Record<string, Edm> = {
  subscriptionId: 'String',
  customerNumber: 'String',
  itemNumber: 'String',
  quantity: 'Decimal',
  unitPrice: 'Decimal',
  billingPeriod: 'Enum',
  status: 'Enum',
  startDate: 'Date',
  endDate: 'Date',
  nextInvoiceDate: 'Date',
  version: 'Int32',
  currencyCode: 'String',
  lastModifiedDateTime: 'DateTimeOffset',
};

const BILLING_CHANGE_FIELDS: Record<string, Edm> = {
  changeKey: 'String',
  subscriptionId: 'String',
  version: 'Int32',
  appliedDateTime: 'DateTimeOffset',
};

/** The standard API v2.0 entity sets the adapter reads. */
const STANDARD: Record<string, EntitySet> = {
  companies: {
    type: 'company',
    table: 'companies',
    fields: { id: 'Guid', systemVersion: 'String', name: 'String', displayName: 'String', businessProfileId: 'String' },
  },
  companyInformation: {
    type: 'companyInformation',
    table: 'companyInformation',
    fields: { id: 'Guid', displayName: 'String', currencyCode: 'String', country: 'String', lastModifiedDateTime: 'DateTimeOffset' },
  },
  paymentTerms: {
    type: 'paymentTerm',
    table: 'paymentTerms',
    fields: { id: 'Guid', code: 'String', displayName: 'String', dueDateCalculation: 'String' },
  },
  customers: {
    type: 'customer',
    table: 'customers',
    fields: CUSTOMER_FIELDS,
    navigation: { paymentTerm: { set: 'paymentTerms', many: false, matches: (customer, terms) => terms.id === customer.paymentTermsId } },
    insert: insertCustomer,
    update: updateCustomer,
  },
  taxAreas: {
    type: 'taxArea',
    table: 'taxAreas',
    fields: { id: 'Guid', code: 'String', displayName: 'String', taxType: 'Enum', lastModifiedDateTime: 'DateTimeOffset' },
  },
  items: {
    type: 'item',
    table: 'items',
    fields: {
      id: 'Guid',
      number: 'String',
      displayName: 'String',
      type: 'Enum',
      itemCategoryCode: 'String',
      inventory: 'Decimal',
      unitPrice: 'Decimal',
      baseUnitOfMeasureCode: 'String',
    },
  },
  salesOrders: {
    type: 'salesOrder',
    table: 'salesOrders',
    fields: SALES_ORDER_FIELDS,
    navigation: { salesOrderLines: { set: 'salesOrderLines', many: true, matches: byDocument } },
    insert: insertSalesOrder,
    remove: removeSalesOrder,
  },
  salesOrderLines: { type: 'salesOrderLine', table: 'salesOrderLines', fields: SALES_ORDER_LINE_FIELDS },
  salesShipments: {
    type: 'salesShipment',
    table: 'salesShipments',
    fields: {
      id: 'Guid',
      number: 'String',
      orderNumber: 'String',
      customerNumber: 'String',
      postingDate: 'Date',
      shipmentMethodCode: 'String',
      lastModifiedDateTime: 'DateTimeOffset',
    },
    navigation: { salesShipmentLines: { set: 'salesShipmentLines', many: true, matches: byDocument } },
  },
  salesShipmentLines: {
    type: 'salesShipmentLine',
    table: 'salesShipmentLines',
    fields: {
      id: 'Guid',
      documentId: 'Guid',
      documentNo: 'String',
      sequence: 'Int32',
      lineObjectNumber: 'String',
      description: 'String',
      quantity: 'Decimal',
      shipmentDate: 'Date',
    },
  },
  salesInvoices: { type: 'salesInvoice', table: 'salesInvoices', fields: SALES_INVOICE_FIELDS },
};

/** The custom API page (an extension, not the standard API): what the standard API lacks. */
const EXTENSION: Record<string, EntitySet> = {
  items: {
    type: 'item',
    table: 'items',
    fields: {
      id: 'Guid',
      number: 'String',
      displayName: 'String',
      description: 'String',
      itemCategoryCode: 'String',
      unitPrice: 'Decimal',
      itemTrackingCode: 'String',
      warrantyMonths: 'Int32',
    },
  },
  shipments: {
    type: 'shipment',
    table: 'salesShipments',
    fields: {
      id: 'Guid',
      number: 'String',
      orderNumber: 'String',
      customerNumber: 'String',
      postingDate: 'Date',
      shippingAgentCode: 'String',
      packageTrackingNumber: 'String',
      deliveredDate: 'Date',
      lastModifiedDateTime: 'DateTimeOffset',
    },
  },
  serialNumbers: {
    type: 'serialNumber',
    table: 'serialNumbers',
    fields: {
      id: 'Guid',
      serialNumber: 'String',
      itemNumber: 'String',
      customerNumber: 'String',
      orderNumber: 'String',
      shipmentNumber: 'String',
      warrantyStartDate: 'Date',
      warrantyEndDate: 'Date',
      warrantyCode: 'String',
    },
  },
  salesInvoices: { type: 'salesInvoice', table: 'salesInvoices', fields: { ...SALES_INVOICE_FIELDS, closedDate: 'Date' } },
  salesReturnOrders: {
    type: 'salesReturnOrder',
    table: 'salesReturnOrders',
    fields: RETURN_ORDER_FIELDS,
    navigation: { salesReturnOrderLines: { set: 'salesReturnOrderLines', many: true, matches: byDocument } },
    insert: insertReturnOrder,
  },
  salesReturnOrderLines: { type: 'salesReturnOrderLine', table: 'salesReturnOrderLines', fields: RETURN_LINE_FIELDS },
  /**
   * The CRM account a customer was onboarded from: a page over the Customer table (its id is the
   * customer's), with the extension's field beside the customer number. Written by PATCH only:
   * customers are created through the standard API. The extension keeps a reference unique.
   */
  customerReferences: {
    type: 'customerReference',
    table: 'customers',
    fields: CUSTOMER_REFERENCE_FIELDS,
    update: updateCustomerReference,
  },
  /** Subscription Billing: a subscription's billing schedule, keyed by the subscription's id. */
  subscriptionBillingSchedules: {
    type: 'subscriptionBillingSchedule',
    table: 'subscriptionBillingSchedules',
    key: 'subscriptionId',
    fields: BILLING_SCHEDULE_FIELDS,
    insert: insertBillingSchedule,
    update: updateBillingSchedule,
  },
  /** Subscription Billing: the change keys applied, each with the schedule version it makes. */
  subscriptionBillingChanges: {
    type: 'subscriptionBillingChange',
    table: 'subscriptionBillingChanges',
    key: 'changeKey',
    fields: BILLING_CHANGE_FIELDS,
    insert: insertBillingChange,
    update: updateBillingChange,
  },
};

const APIS: Record<Api, Record<string, EntitySet>> = { standard: STANDARD, extension: EXTENSION };

// ---------------------------------------------------------------------------------------------
// The data: the embedded ERP's tables, read once.
// ---------------------------------------------------------------------------------------------

type Store = Map<string, Row[]>;

const ERP_TABLES = [
  'paymentTerms',
  'customers',
  'items',
  'salesOrders',
  'salesOrderLines',
  'salesShipments',
  'salesShipmentLines',
  'serialNumbers',
  'salesInvoices',
  'salesReturnOrders',
  'salesReturnOrderLines',
  'subscriptionBillingSchedules',
  'subscriptionBillingChanges',
] as const;

/** A stable GUID for rows the embedded tables key otherwise (serial numbers). */
function guidOf(text: string): string {
  const hex = createHash('sha1').update(text).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The number series of sales orders: the last number given, as `SO-{n}` (numbers are never reused). */
const SALES_ORDER_SERIES = { code: 'S-ORD', prefix: 'SO-', first: 200_000 };
/** The number series of customers, as `C{n}` from C10001 on. */
const CUSTOMER_SERIES = { code: 'CUST', prefix: 'C', first: 10_000 };

/** The last number a series gave, among `numbers` (the entities' numbers), or its start. */
function lastOfSeries(series: { prefix: string; first: number }, numbers: readonly unknown[]): number {
  const pattern = new RegExp(`^${series.prefix}(\\d+)$`);
  const given = numbers.map((number) => Number(pattern.exec(String(number))?.[1] ?? NaN)).filter((n) => n > series.first);
  return Math.max(series.first, ...given);
}

/** The next number of a series, which is then used up. */
function nextNumber(store: Store, series: { code: string; prefix: string }): string {
  const row = rowsOf(store, 'numberSeries').find((candidate) => candidate.code === series.code)!;
  row.lastNo = Number(row.lastNo) + 1;
  return `${series.prefix}${String(row.lastNo)}`;
}

function loadStore(
  db: Database,
  company: { id: string; name: string; currency: string },
  taxAreaDescriptions: Record<string, string>,
): Store {
  const store: Store = new Map();
  for (const table of ERP_TABLES) store.set(table, db.prepare(`SELECT * FROM ${table} ORDER BY rowid`).all() as Row[]);
  for (const row of store.get('serialNumbers')!) row.id = guidOf(String(row.serialNumber));
  // Posted documents the embedded tables keep no modification time for were last changed when posted.
  for (const table of ['salesShipments', 'salesInvoices'])
    for (const row of store.get(table)!) row.lastModifiedDateTime ??= `${String(row.postingDate)}T00:00:00Z`;
  // Fields of the standard entities the embedded tables do not keep. A customer points to its tax
  // area by id, and shows the area's description, not its code.
  const taxAreas = new Map<string, Row>();
  for (const row of store.get('customers')!) {
    row.type = 'Company';
    // The customerReferences page shows the customer's number under its own name.
    row.customerNumber = row.number;
    const code = typeof row.taxAreaCode === 'string' && row.taxAreaCode ? row.taxAreaCode : null;
    if (!code) continue;
    const area = taxAreas.get(code) ?? {
      id: guidOf(`taxArea/${code}`),
      code,
      displayName: taxAreaDescriptions[code] ?? code,
      taxType: 'Sales Tax',
    };
    taxAreas.set(code, area);
    row.taxLiable = true;
    row.taxAreaId = area.id;
    row.taxAreaDisplayName = area.displayName;
  }
  store.set('taxAreas', [...taxAreas.values()]);
  store.set('numberSeries', [
    {
      code: SALES_ORDER_SERIES.code,
      lastNo: lastOfSeries(
        SALES_ORDER_SERIES,
        store.get('salesOrders')!.map((row) => row.number),
      ),
    },
    {
      code: CUSTOMER_SERIES.code,
      lastNo: lastOfSeries(
        CUSTOMER_SERIES,
        store.get('customers')!.map((row) => row.number),
      ),
    },
  ]);
  store.set('companies', [{ id: company.id, systemVersion: '26.0.0.0', name: company.name, displayName: company.name }]);
  store.set('companyInformation', [
    { id: guidOf(`${company.id}/information`), displayName: company.name, currencyCode: company.currency, country: 'US' },
  ]);
  return store;
}

function rowsOf(store: Store, table: string): Row[] {
  const rows = store.get(table);
  if (!rows) throw new Error(`no table ${table}`);
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Answers and errors.
// ---------------------------------------------------------------------------------------------

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

const JSON_HEADERS = {
  'content-type': 'application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8',
  'odata-version': '4.0',
};

/** A failure answered in Business Central's error shape. */
class ODataError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function errorAnswer(error: ODataError): Answer {
  return {
    status: error.status,
    headers: { ...JSON_HEADERS, ...error.headers },
    body: { error: { code: error.code, message: `${error.message}  CorrelationId:  ${randomUUID()}.` } },
  };
}

const badQuery = (message: string) => new ODataError(400, 'BadRequest_InvalidQuery', message);

/** The wire value of a field: booleans as booleans, blanks in Business Central's forms. */
function wire(type: Edm, value: unknown): unknown {
  if (value === null || value === undefined) return BLANKS[type];
  if (type === 'Boolean') return value === true || value === 1;
  if (type === 'Enum' && typeof value === 'string' && value.trim() === '') return BLANKS.Enum;
  return value;
}

/** A weak ETag that changes with the entity's content, in Business Central's base64 form. */
function etagOf(row: Row): string {
  const hash = BigInt(`0x${createHash('sha1').update(JSON.stringify(row)).digest('hex').slice(0, 15)}`).toString();
  return `W/"${Buffer.from(`'${hash.length};${hash}1;00;'`).toString('base64')}"`;
}

// ---------------------------------------------------------------------------------------------
// System query options.
// ---------------------------------------------------------------------------------------------

interface Expand {
  navigation: string;
  select: string[] | null;
}

interface ListQuery {
  select: string[] | null;
  expand: Expand[];
  filter: FilterNode | null;
  orderby: { field: string; descending: boolean }[];
  top: number | null;
  skiptoken: string | null;
}

const QUERY_OPTIONS = new Set(['$select', '$expand', '$filter', '$orderby', '$top', '$skiptoken']);

/** Decodes the query string; percent-decoding only ('+' is a plus, as OData clients send it). */
function parseQueryString(search: string): Record<string, string> {
  const options: Record<string, string> = {};
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (!part) continue;
    const at = part.indexOf('=');
    const name = decodeURIComponent(at < 0 ? part : part.slice(0, at));
    options[name] = decodeURIComponent(at < 0 ? '' : part.slice(at + 1));
  }
  return options;
}

function checkFields(set: EntitySet, fields: readonly string[]): void {
  for (const field of fields) {
    if (!(field in set.fields)) {
      throw new ODataError(400, 'BadRequest_NotFound', `Could not find a property named '${field}' on type 'Microsoft.NAV.${set.type}'.`);
    }
  }
}

function parseSelect(set: EntitySet, text: string | undefined): string[] | null {
  if (text === undefined) return null;
  const fields = text
    .split(',')
    .map((field) => field.trim())
    .filter(Boolean);
  checkFields(set, fields);
  return fields;
}

/** Splits on commas outside parentheses. */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '(') depth += 1;
    else if (c === ')') depth -= 1;
    else if (c === separator && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((part) => part.trim()).filter(Boolean);
}

/** `$expand=salesOrderLines` or `$expand=salesOrderLines($select=a,b)`. */
function parseExpand(api: Api, set: EntitySet, text: string | undefined): Expand[] {
  if (text === undefined) return [];
  return splitTopLevel(text, ',').map((item) => {
    const match = /^(\w+)(?:\((.*)\))?$/.exec(item);
    const navigation = match?.[1];
    const nav = navigation ? set.navigation?.[navigation] : undefined;
    if (!match || !navigation || !nav) {
      throw new ODataError(
        400,
        'BadRequest_NotFound',
        `Could not find a navigation property named '${item}' on type 'Microsoft.NAV.${set.type}'.`,
      );
    }
    let select: string[] | null = null;
    for (const option of splitTopLevel(match[2] ?? '', ';')) {
      const [name, value] = [option.slice(0, option.indexOf('=')), option.slice(option.indexOf('=') + 1)];
      if (name !== '$select') throw badQuery(`The query option '${name}' is not supported inside $expand.`);
      select = parseSelect(APIS[api][nav.set]!, value);
    }
    return { navigation, select };
  });
}

function parseOrderby(set: EntitySet, text: string | undefined): ListQuery['orderby'] {
  if (text === undefined) return [];
  return text.split(',').map((part) => {
    const [field = '', direction = 'asc', ...rest] = part.trim().split(/\s+/);
    if (rest.length || (direction !== 'asc' && direction !== 'desc')) throw badQuery(`Syntax error in $orderby: '${part}'.`);
    checkFields(set, [field]);
    return { field, descending: direction === 'desc' };
  });
}

function parseListQuery(api: Api, set: EntitySet, options: Record<string, string>): ListQuery {
  for (const name of Object.keys(options)) {
    if (name.startsWith('$') && !QUERY_OPTIONS.has(name)) throw badQuery(`The query parameter '${name}' is not supported.`);
  }
  const top = options.$top === undefined ? null : Number(options.$top);
  if (top !== null && (!Number.isInteger(top) || top < 0)) throw badQuery(`Invalid value '${options.$top}' for $top query option found.`);
  return {
    select: parseSelect(set, options.$select),
    expand: parseExpand(api, set, options.$expand),
    filter: options.$filter === undefined ? null : parseFilter(set, options.$filter),
    orderby: parseOrderby(set, options.$orderby),
    top,
    skiptoken: options.$skiptoken === undefined ? null : options.$skiptoken.replace(/^'|'$/g, ''),
  };
}

/** The page size a client asked for with `Prefer: odata.maxpagesize=N`, if any. */
function maxPageSize(prefer: string | undefined): number | null {
  const match = /odata\.maxpagesize=(\d+)/.exec(prefer ?? '');
  return match ? Math.max(1, Number(match[1])) : null;
}

// ---------------------------------------------------------------------------------------------
// $filter: comparisons (eq ne lt le gt ge) joined with and / or / not and parentheses, over
// string, date, date-time, number, boolean and GUID literals, typed like Business Central.
// ---------------------------------------------------------------------------------------------

type Literal =
  | { kind: 'string'; value: string }
  | { kind: 'date'; value: string }
  | { kind: 'datetime'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'guid'; value: string };

type FilterNode =
  | { op: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { op: 'not'; operand: FilterNode }
  | { op: 'compare'; field: string; type: Edm; comparison: Comparison; literal: Literal };

type Comparison = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
const COMPARISONS = new Set<string>(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);

type Token = { kind: 'open' | 'close' } | { kind: 'word'; text: string } | { kind: 'literal'; literal: Literal };

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})/;
const DATE = /^\d{4}-\d{2}-\d{2}/;
const NUMBER = /^-?\d+(\.\d+)?/;
const WORD = /^[A-Za-z_]\w*/;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let rest = text;
  while ((rest = rest.trimStart())) {
    let match: RegExpExecArray | null;
    if (rest[0] === '(' || rest[0] === ')') {
      tokens.push({ kind: rest[0] === '(' ? 'open' : 'close' });
      rest = rest.slice(1);
    } else if (rest[0] === "'") {
      let value = '';
      let i = 1;
      for (; i < rest.length; i += 1) {
        if (rest[i] === "'" && rest[i + 1] === "'") {
          value += "'";
          i += 1;
        } else if (rest[i] === "'") break;
        else value += rest[i];
      }
      if (i >= rest.length) throw badQuery(`Unterminated string literal in $filter: ${text}`);
      tokens.push({ kind: 'literal', literal: { kind: 'string', value } });
      rest = rest.slice(i + 1);
    } else if ((match = GUID.exec(rest))) {
      tokens.push({ kind: 'literal', literal: { kind: 'guid', value: match[0].toLowerCase() } });
      rest = rest.slice(match[0].length);
    } else if ((match = DATE_TIME.exec(rest))) {
      tokens.push({ kind: 'literal', literal: { kind: 'datetime', value: match[0] } });
      rest = rest.slice(match[0].length);
    } else if ((match = DATE.exec(rest))) {
      tokens.push({ kind: 'literal', literal: { kind: 'date', value: match[0] } });
      rest = rest.slice(match[0].length);
    } else if ((match = NUMBER.exec(rest))) {
      tokens.push({ kind: 'literal', literal: { kind: 'number', value: Number(match[0]) } });
      rest = rest.slice(match[0].length);
    } else if ((match = WORD.exec(rest))) {
      const word = match[0];
      tokens.push(
        word === 'true' || word === 'false'
          ? { kind: 'literal', literal: { kind: 'boolean', value: word === 'true' } }
          : { kind: 'word', text: word },
      );
      rest = rest.slice(word.length);
    } else {
      throw badQuery(`Syntax error at '${rest.slice(0, 20)}' in $filter.`);
    }
  }
  return tokens;
}

// The literal kinds each EDM type compares with; anything else is the error Business Central gives.
const COMPATIBLE: Record<Edm, Literal['kind']> = {
  String: 'string',
  Enum: 'string',
  Guid: 'guid',
  Date: 'date',
  DateTimeOffset: 'datetime',
  Decimal: 'number',
  Int32: 'number',
  Boolean: 'boolean',
};

/** Parses `$filter` (or binds loosest, then and, then not) and checks fields and literal types. */
function parseFilter(set: EntitySet, text: string): FilterNode {
  const tokens = tokenize(text);
  let at = 0;
  const peekWord = () => {
    const token = tokens[at];
    return token?.kind === 'word' ? token.text : null;
  };
  const parseOr = (): FilterNode => {
    let node = parseAnd();
    while (peekWord() === 'or') {
      at += 1;
      node = { op: 'or', left: node, right: parseAnd() };
    }
    return node;
  };
  const parseAnd = (): FilterNode => {
    let node = parseUnary();
    while (peekWord() === 'and') {
      at += 1;
      node = { op: 'and', left: node, right: parseUnary() };
    }
    return node;
  };
  const parseUnary = (): FilterNode => {
    if (peekWord() === 'not') {
      at += 1;
      return { op: 'not', operand: parseUnary() };
    }
    if (tokens[at]?.kind === 'open') {
      at += 1;
      const node = parseOr();
      if (tokens[at]?.kind !== 'close') throw badQuery(`')' expected in $filter: ${text}`);
      at += 1;
      return node;
    }
    return parseComparison();
  };
  const parseComparison = (): FilterNode => {
    const [field, comparison, value] = [tokens[at], tokens[at + 1], tokens[at + 2]];
    if (field?.kind !== 'word' || comparison?.kind !== 'word' || !COMPARISONS.has(comparison.text) || value?.kind !== 'literal') {
      throw badQuery(`Syntax error in $filter: ${text}`);
    }
    at += 3;
    checkFields(set, [field.text]);
    const type = set.fields[field.text]!;
    if (COMPATIBLE[type] !== value.literal.kind) {
      throw badQuery(
        `A binary operator with incompatible types was detected. Found operand types 'Edm.${type}' and '${value.literal.kind}' for operator kind '${comparison.text}'.`,
      );
    }
    return { op: 'compare', field: field.text, type, comparison: comparison.text as Comparison, literal: value.literal };
  };
  const node = parseOr();
  if (at !== tokens.length) throw badQuery(`Syntax error in $filter: ${text}`);
  return node;
}

function compare(a: unknown, b: unknown, type?: Edm): number {
  // Date-times compare as instants: 12:00:00Z and 12:00:00.000Z are the same, 12:00:00.5Z later.
  if (type === 'DateTimeOffset') return Date.parse(String(a)) - Date.parse(String(b));
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const [x, y] = [String(a), String(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

function matches(node: FilterNode, row: Row): boolean {
  switch (node.op) {
    case 'and':
      return matches(node.left, row) && matches(node.right, row);
    case 'or':
      return matches(node.left, row) || matches(node.right, row);
    case 'not':
      return !matches(node.operand, row);
    case 'compare': {
      const value = wire(node.type, row[node.field]);
      const order = compare(node.type === 'Guid' ? String(value).toLowerCase() : value, node.literal.value, node.type);
      const outcomes: Record<Comparison, boolean> = {
        eq: order === 0,
        ne: order !== 0,
        lt: order < 0,
        le: order <= 0,
        gt: order > 0,
        ge: order >= 0,
      };
      return outcomes[node.comparison];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Request handling, independent of HTTP (a $batch operation goes through the same path).
// ---------------------------------------------------------------------------------------------

interface Route {
  api: Api;
  /** The path up to and including the API version: where $metadata and $batch live. */
  root: string;
  /** `$batch`, `companies`, `companies(id)`, `companies(id)/set` or `companies(id)/set(key)`. */
  company: string | null;
  set: string | null;
  key: string | null;
  batch: boolean;
}

interface Context {
  store: Store;
  companyId: string;
  prefix: string;
  extension: { publisher: string; group: string; version: string };
  now: () => Date;
  origin: string;
}

const stripKey = (key: string) => key.replace(/^'|'$/g, '').toLowerCase();

/** The set's key field. */
const keyFieldOf = (set: EntitySet) => set.key ?? 'id';

/**
 * The entity a key segment names (still percent-encoded): a GUID compared case-insensitively, a
 * string key as a quoted OData literal compared exactly.
 */
function findByKey(context: Context, set: EntitySet, rawKey: string): Row | undefined {
  const rows = rowsOf(context.store, set.table);
  let text: string;
  try {
    text = decodeURIComponent(rawKey);
  } catch {
    throw badQuery(`The key '${rawKey}' is not percent-encoded correctly.`);
  }
  if (!set.key) return rows.find((candidate) => String(candidate.id).toLowerCase() === stripKey(text));
  const literal = /^'(.*)'$/s.exec(text);
  if (!literal) throw badQuery(`The key '${text}' is not a string literal.`);
  const key = literal[1]!.replace(/''/g, "'");
  return rows.find((candidate) => candidate[set.key!] === key);
}

function parseRoute(context: Context, pathname: string): Route {
  const notFound = () =>
    new ODataError(404, 'BadRequest_NotFound', `No HTTP resource was found that matches the request URI '${pathname}'.`);
  if (!pathname.startsWith(`${context.prefix}/api/`)) throw notFound();
  const after = pathname.slice(context.prefix.length + '/api/'.length);
  const { publisher, group, version } = context.extension;
  let api: Api;
  let rest: string;
  if (after.startsWith('v2.0/') || after === 'v2.0') {
    api = 'standard';
    rest = after.slice('v2.0'.length);
  } else if (after.startsWith(`${publisher}/${group}/${version}`)) {
    api = 'extension';
    rest = after.slice(`${publisher}/${group}/${version}`.length);
  } else {
    throw notFound();
  }
  const root = pathname.slice(0, pathname.length - rest.length);
  const segments = rest.split('/').filter(Boolean);
  if (segments.length === 1 && segments[0] === '$batch') return { api, root, company: null, set: null, key: null, batch: true };
  const company = /^companies(?:\(([^)]+)\))?$/.exec(segments[0] ?? '');
  if (!company || segments.length > 2 || (segments.length === 2 && !company[1])) throw notFound();
  if (segments.length === 1) return { api, root, company: company[1] ?? null, set: 'companies', key: company[1] ?? null, batch: false };
  const entity = /^(\w+)(?:\((.+)\))?$/.exec(segments[1]!);
  if (!entity) throw notFound();
  return { api, root, company: company[1]!, set: entity[1]!, key: entity[2] ?? null, batch: false };
}

function entitySetOf(route: Route): EntitySet {
  const set = route.set ? APIS[route.api][route.set] : undefined;
  if (!set || (route.set === 'companies' && route.company !== null && route.key === null)) {
    throw new ODataError(404, 'BadRequest_NotFound', `The entity set '${route.set}' is not found.`);
  }
  return set;
}

function serialize(context: Context, api: Api, set: EntitySet, row: Row, select: string[] | null, expand: Expand[]): Row {
  const entity: Row = { '@odata.etag': etagOf(row) };
  for (const field of select ?? Object.keys(set.fields)) entity[field] = wire(set.fields[field]!, row[field]);
  for (const { navigation, select: childSelect } of expand) {
    const nav = set.navigation![navigation]!;
    const childSet = APIS[api][nav.set]!;
    const children = rowsOf(context.store, childSet.table).filter((child) => nav.matches(row, child));
    const [first] = children;
    entity[navigation] = nav.many
      ? children.map((child) => serialize(context, api, childSet, child, childSelect, []))
      : first
        ? serialize(context, api, childSet, first, childSelect, [])
        : null;
  }
  return entity;
}

/** The collection's path below the API root. */
function collectionPath(context: Context, route: Route): string {
  return route.company === null ? 'companies' : `companies(${context.companyId})/${route.set}`;
}

function contextUrl(context: Context, route: Route, suffix: string): string {
  return `${context.origin}${route.root}/$metadata#${suffix}`;
}

/** GET of a collection: filter, order, $top, then one page from the $skiptoken on. */
function readList(context: Context, route: Route, set: EntitySet, search: string, prefer: string | undefined): Answer {
  const options = parseQueryString(search);
  const query = parseListQuery(route.api, set, options);
  let rows = rowsOf(context.store, set.table);
  if (query.filter) rows = rows.filter((row) => matches(query.filter!, row));
  if (query.orderby.length) {
    rows = [...rows].sort((a, b) => {
      for (const { field, descending } of query.orderby) {
        const order = compare(wire(set.fields[field]!, a[field]), wire(set.fields[field]!, b[field]), set.fields[field]);
        if (order) return descending ? -order : order;
      }
      return 0;
    });
  }
  if (query.top !== null) rows = rows.slice(0, query.top);
  if (query.skiptoken) {
    const keyField = keyFieldOf(set);
    const after = rows.findIndex((row) =>
      set.key ? String(row[keyField]) === query.skiptoken : String(row.id).toLowerCase() === query.skiptoken!.toLowerCase(),
    );
    rows = after < 0 ? [] : rows.slice(after + 1);
  }
  const pageSize = maxPageSize(prefer);
  const page = pageSize === null ? rows : rows.slice(0, pageSize);
  const selected = query.select ? `(${query.select.join(',')})` : '';
  const body: Row = {
    '@odata.context': contextUrl(context, route, `${collectionPath(context, route)}${selected}`),
    value: page.map((row) => serialize(context, route.api, set, row, query.select, query.expand)),
  };
  const last = page[page.length - 1];
  if (pageSize !== null && rows.length > page.length && last) {
    const next = { ...options, $skiptoken: `'${String(last[keyFieldOf(set)])}'` };
    const queryText = Object.entries(next)
      .map(([name, value]) => `${name}=${encodeURIComponent(value)}`)
      .join('&');
    body['@odata.nextLink'] = `${context.origin}${route.root}/${collectionPath(context, route)}?${queryText}`;
  }
  const headers: Record<string, string> = pageSize === null ? {} : { 'preference-applied': `odata.maxpagesize=${pageSize}` };
  return { status: 200, headers, body };
}

/** GET of one entity by key: 404 Internal_RecordNotFound when there is none. */
function readEntity(context: Context, route: Route, set: EntitySet, search: string): Answer {
  const options = parseQueryString(search);
  const query = parseListQuery(route.api, set, options);
  const row = findByKey(context, set, route.key!);
  if (!row) {
    throw new ODataError(
      404,
      'Internal_RecordNotFound',
      `The ${set.type} does not exist. Identification fields and values: Id='${route.key}'`,
    );
  }
  const suffix = route.set === 'companies' ? 'companies/$entity' : `companies(${context.companyId})/${route.set}/$entity`;
  return {
    status: 200,
    headers: {},
    body: { '@odata.context': contextUrl(context, route, suffix), ...serialize(context, route.api, set, row, query.select, query.expand) },
  };
}

/** The key segment of an entity's URL: its GUID, or its string key as a quoted literal. */
function keySegment(set: EntitySet, row: Row): string {
  const key = String(row[keyFieldOf(set)]);
  return set.key ? encodeURIComponent(`'${key.replace(/'/g, "''")}'`).replace(/'/g, '%27') : key;
}

/**
 * POST of a new entity, where the API allows one. The answer is the entity created, with what
 * `$expand` asks for (a deep insert's lines) and the fields `$select` names.
 */
function create(context: Context, route: Route, set: EntitySet, body: unknown, search: string): Answer {
  if (!set.insert || route.key)
    throw new ODataError(405, 'BadRequest_MethodNotAllowed', `'POST' requests for '${route.set}' are not allowed.`);
  const options = parseQueryString(search);
  for (const name of Object.keys(options)) {
    if (name.startsWith('$') && name !== '$select' && name !== '$expand') {
      throw badQuery(`The query parameter '${name}' is not supported on a POST.`);
    }
  }
  const select = parseSelect(set, options.$select);
  const expand = parseExpand(route.api, set, options.$expand);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'The request body is not a JSON object.');
  }
  const row = set.insert(body as Record<string, unknown>, context.store, context.now());
  return {
    status: 201,
    headers: { location: `${context.origin}${route.root}/companies(${context.companyId})/${route.set}(${keySegment(set, row)})` },
    body: {
      '@odata.context': contextUrl(context, route, `companies(${context.companyId})/${route.set}/$entity`),
      ...serialize(context, route.api, set, row, select, expand),
    },
  };
}

/**
 * The entity a PATCH or DELETE addresses by key. As in Business Central, `If-Match` is required
 * (the entity's `@odata.etag`, or `*`): without it 400 BadRequest_InvalidToken, with a stale one
 * 409 Request_EntityChanged; an unknown key is 404 Internal_RecordNotFound.
 */
function rowToWrite(context: Context, route: Route, set: EntitySet, ifMatch: string | undefined): Row {
  if (!ifMatch) {
    throw new ODataError(
      400,
      'BadRequest_InvalidToken',
      'Could not validate the client concurrency token required by the service. Please provide a valid token in the client request.',
    );
  }
  const row = findByKey(context, set, route.key!);
  if (!row) {
    throw new ODataError(
      404,
      'Internal_RecordNotFound',
      `The ${set.type} does not exist. Identification fields and values: Id='${route.key}'`,
    );
  }
  if (ifMatch.trim() !== '*' && ifMatch.trim() !== etagOf(row)) {
    throw new ODataError(409, 'Request_EntityChanged', 'Another user has already changed the record.');
  }
  return row;
}

/** DELETE of an entity by key under `If-Match`, where the API allows it. */
function remove(context: Context, route: Route, set: EntitySet, ifMatch: string | undefined): Answer {
  if (!set.remove || !route.key)
    throw new ODataError(405, 'BadRequest_MethodNotAllowed', `'DELETE' requests for '${route.set}' are not allowed.`);
  const row = rowToWrite(context, route, set, ifMatch);
  set.remove(row, context.store);
  return { status: 204, headers: {}, body: undefined };
}

/**
 * PATCH of an entity by key under `If-Match`, where the API allows it: the fields the body names
 * change, the others keep their values. The answer is 200 with the entity as it now is (its new
 * `@odata.etag`), with the fields `$select` names and what `$expand` asks for.
 */
function patch(context: Context, route: Route, set: EntitySet, body: unknown, search: string, ifMatch: string | undefined): Answer {
  if (!set.update || !route.key)
    throw new ODataError(405, 'BadRequest_MethodNotAllowed', `'PATCH' requests for '${route.set}' are not allowed.`);
  const options = parseQueryString(search);
  for (const name of Object.keys(options)) {
    if (name.startsWith('$') && name !== '$select' && name !== '$expand') {
      throw badQuery(`The query parameter '${name}' is not supported on a PATCH.`);
    }
  }
  const select = parseSelect(set, options.$select);
  const expand = parseExpand(route.api, set, options.$expand);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'The request body is not a JSON object.');
  }
  const row = rowToWrite(context, route, set, ifMatch);
  set.update(row, body as Record<string, unknown>, context.store, context.now());
  return {
    status: 200,
    headers: {},
    body: {
      '@odata.context': contextUrl(context, route, `companies(${context.companyId})/${route.set}/$entity`),
      ...serialize(context, route.api, set, row, select, expand),
    },
  };
}

/** Checks a POST body's properties against the entity's fields, as Business Central's OData does. */
function typedProperties(type: string, fields: Record<string, Edm>, body: Record<string, unknown>, nested: string[] = []): Row {
  const row: Row = {};
  for (const [name, value] of Object.entries(body)) {
    if (nested.includes(name)) continue;
    const edm = fields[name];
    if (!edm)
      throw new ODataError(400, 'BadRequest_InvalidRequestBody', `The property '${name}' does not exist on type 'Microsoft.NAV.${type}'.`);
    if (value === null)
      throw new ODataError(400, 'BadRequest_InvalidRequestBody', `Cannot convert a null value to the property '${name}'.`);
    const expected = edm === 'Decimal' || edm === 'Int32' ? 'number' : edm === 'Boolean' ? 'boolean' : 'string';
    if (typeof value !== expected) {
      throw new ODataError(
        400,
        'BadRequest_InvalidRequestBody',
        `Cannot convert the literal '${String(value)}' to the expected type 'Edm.${edm}'.`,
      );
    }
    // Stored as the embedded tables keep them: a blank (a blank date included) is null.
    row[name] = value === '' || ((edm === 'Date' || edm === 'DateTimeOffset') && String(value).startsWith('0001-01-01')) ? null : value;
  }
  return row;
}

const READ_ONLY_RETURN_FIELDS = ['id', 'number', 'status', 'createdDateTime'];

/** Fields of a sales order (and of its lines) Business Central computes; a body's values are ignored. */
const READ_ONLY_SALES_ORDER_FIELDS = [
  'id',
  'number',
  'status',
  'customerName',
  'totalAmountExcludingTax',
  'totalTaxAmount',
  'totalAmountIncludingTax',
  'fullyShipped',
  'lastModifiedDateTime',
];
const READ_ONLY_SALES_ORDER_LINE_FIELDS = ['id', 'documentId', 'sequence', 'amountExcludingTax', 'shippedQuantity'];

/** Business Central's External Document No. is a Code[35]. */
const EXTERNAL_DOCUMENT_LENGTH = 35;

const cents = (amount: number) => Math.round(amount * 100);

/**
 * Deep insert of a sales order with its lines (standard API v2.0), as Business Central makes it:
 * the number from the number series, status Open, the external document number upper-cased
 * (a Code field) and not required to be unique, lines numbered 10000, 20000, … with the item's
 * description and price where the body gives none, totals summed from the lines (no tax set up).
 */
function insertSalesOrder(body: Record<string, unknown>, store: Store, now: Date): Row {
  const header = typedProperties('salesOrder', SALES_ORDER_FIELDS, body, ['salesOrderLines']);
  for (const field of READ_ONLY_SALES_ORDER_FIELDS) delete header[field];
  const lines = body.salesOrderLines ?? [];
  if (!Array.isArray(lines)) throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'salesOrderLines must be an array.');
  const customers = rowsOf(store, 'customers');
  const customer = header.customerNumber
    ? customers.find((row) => row.number === header.customerNumber)
    : header.customerId
      ? customers.find((row) => String(row.id).toLowerCase() === String(header.customerId).toLowerCase())
      : undefined;
  if (!header.customerNumber && !header.customerId) {
    throw new ODataError(400, 'Application_DialogException', 'A customerNumber or a customerID must be provided.');
  }
  if (!customer) {
    throw new ODataError(
      400,
      'Internal_RecordNotFound',
      `The Customer does not exist. Identification fields and values: No.='${String(header.customerNumber ?? header.customerId)}'`,
    );
  }
  const document = typeof header.externalDocumentNumber === 'string' ? header.externalDocumentNumber : null;
  if (document && document.length > EXTERNAL_DOCUMENT_LENGTH) {
    throw new ODataError(
      400,
      'Application_StringExceededLength',
      `The length of the string is ${document.length}, but it must be less than or equal to ${EXTERNAL_DOCUMENT_LENGTH} characters. Value: ${document}`,
    );
  }
  for (const field of ['orderDate', 'requestedDeliveryDate']) {
    if (header[field] !== undefined && header[field] !== null && !/^\d{4}-\d{2}-\d{2}$/.test(String(header[field]))) {
      throw new ODataError(400, 'BadRequest', 'Unable to convert value to Date');
    }
  }
  const items = new Map(rowsOf(store, 'items').map((row) => [row.number, row]));
  const lineRows = lines.map((line: unknown, i): Row => {
    if (typeof line !== 'object' || line === null) throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'A line is not an object.');
    const row = typedProperties('salesOrderLine', SALES_ORDER_LINE_FIELDS, line as Record<string, unknown>);
    for (const field of READ_ONLY_SALES_ORDER_LINE_FIELDS) delete row[field];
    if (row.lineType !== 'Item') {
      throw new ODataError(
        400,
        'BadRequest_InvalidRequestBody',
        `The lineType '${String(row.lineType ?? '')}' is not served here: lines are of type 'Item'.`,
      );
    }
    const item = items.get(row.lineObjectNumber);
    if (!item) {
      throw new ODataError(
        400,
        'Internal_RecordNotFound',
        `The Item does not exist. Identification fields and values: No.='${String(row.lineObjectNumber)}'`,
      );
    }
    const quantity = typeof row.quantity === 'number' ? row.quantity : 0;
    const unitPrice = typeof row.unitPrice === 'number' ? row.unitPrice : Number(item.unitPrice);
    return {
      ...row,
      id: randomUUID(),
      sequence: (i + 1) * 10000,
      description: row.description ?? item.displayName,
      quantity,
      unitPrice,
      amountExcludingTax: (cents(unitPrice) * quantity) / 100,
      shippedQuantity: 0,
      shipmentDate: null,
    };
  });
  const total = lineRows.reduce((sum, line) => sum + cents(Number(line.unitPrice)) * Number(line.quantity), 0) / 100;
  const order: Row = {
    ...header,
    id: randomUUID(),
    number: nextNumber(store, SALES_ORDER_SERIES),
    externalDocumentNumber: document ? document.toUpperCase() : null,
    orderDate: header.orderDate ?? now.toISOString().slice(0, 10),
    customerId: customer.id,
    customerNumber: customer.number,
    customerName: customer.displayName,
    currencyCode: header.currencyCode ?? customer.currencyCode,
    requestedDeliveryDate: header.requestedDeliveryDate ?? null,
    totalAmountExcludingTax: total,
    totalTaxAmount: 0,
    totalAmountIncludingTax: total,
    fullyShipped: 0,
    status: 'Open',
    lastModifiedDateTime: now.toISOString(),
  };
  rowsOf(store, 'salesOrders').push(order);
  rowsOf(store, 'salesOrderLines').push(...lineRows.map((line) => ({ ...line, documentId: order.id })));
  return order;
}

/**
 * Deletes a sales order and its lines. Business Central refuses while a line has shipped and not
 * been invoiced (a TestField on the line's Qty. Shipped Not Invoiced); here, once anything shipped.
 */
function removeSalesOrder(order: Row, store: Store): void {
  const lines = rowsOf(store, 'salesOrderLines');
  const shipped = lines.find((line) => line.documentId === order.id && Number(line.shippedQuantity) > 0);
  if (shipped) {
    throw new ODataError(
      400,
      'Application_FieldValidationException',
      `Qty. Shipped Not Invoiced must be equal to '0'  in Sales Line: Document Type=Order, Document No.=${String(order.number)}, Line No.=${String(shipped.sequence)}. Current value is '${String(shipped.shippedQuantity)}'.`,
    );
  }
  const orders = rowsOf(store, 'salesOrders');
  orders.splice(orders.indexOf(order), 1);
  for (let i = lines.length - 1; i >= 0; i -= 1) if (lines[i]!.documentId === order.id) lines.splice(i, 1);
}

/** Deep insert of a return order with its lines (extension entity). */
function insertReturnOrder(body: Record<string, unknown>, store: Store, now: Date): Row {
  const header = typedProperties('salesReturnOrder', RETURN_ORDER_FIELDS, body, ['salesReturnOrderLines']);
  for (const field of READ_ONLY_RETURN_FIELDS) delete header[field];
  const lines = body.salesReturnOrderLines ?? [];
  if (!Array.isArray(lines)) throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'salesReturnOrderLines must be an array.');
  const customer = rowsOf(store, 'customers').find((row) => row.number === header.customerNumber);
  if (!customer) {
    throw new ODataError(
      400,
      'Internal_RecordNotFound',
      `The Customer does not exist. Identification fields and values: No.='${String(header.customerNumber)}'`,
    );
  }
  if (!header.externalDocumentNumber) {
    throw new ODataError(400, 'Application_FieldValidationException', 'External Document No. must have a value in Sales Header.');
  }
  const orders = rowsOf(store, 'salesReturnOrders');
  if (orders.some((row) => row.externalDocumentNumber === header.externalDocumentNumber)) {
    throw new ODataError(
      409,
      'Internal_EntityWithSameKeyExists',
      `The record in table Sales Header already exists. Identification fields and values: External Document No.='${String(header.externalDocumentNumber)}'`,
    );
  }
  const items = new Set(rowsOf(store, 'items').map((row) => row.number));
  const lineRows = lines.map((line: unknown, i) => {
    if (typeof line !== 'object' || line === null) throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'A line is not an object.');
    const row = typedProperties('salesReturnOrderLine', RETURN_LINE_FIELDS, line as Record<string, unknown>);
    if (!items.has(row.lineObjectNumber)) {
      throw new ODataError(
        400,
        'Internal_RecordNotFound',
        `The Item does not exist. Identification fields and values: No.='${String(row.lineObjectNumber)}'`,
      );
    }
    return { ...row, id: randomUUID(), sequence: (i + 1) * 10000, orderLineSequence: row.orderLineSequence || null };
  });
  const order: Row = {
    ...header,
    id: randomUUID(),
    number: `RMA-${String(900000 + orders.length + 1)}`,
    status: 'Open',
    createdDateTime: now.toISOString(),
  };
  orders.push(order);
  rowsOf(store, 'salesReturnOrderLines').push(...lineRows.map((line) => ({ ...line, documentId: order.id })));
  return order;
}

/** The options of a customer's Blocked field; the blank one also arrives as OData writes it. */
const CUSTOMER_BLOCKED = new Set([' ', 'Ship', 'Invoice', 'All']);
/** Customer fields Business Central computes or keeps to itself: a body may not set them. */
const READ_ONLY_CUSTOMER_FIELDS = ['id', 'balanceDue', 'taxAreaDisplayName', 'lastModifiedDateTime'];

const notFound = (table: string, field: string, value: unknown) =>
  new ODataError(
    400,
    'Internal_RecordNotFound',
    `The ${table} does not exist. Identification fields and values: ${field}='${String(value)}'`,
  );

/**
 * Applies a customer body's fields to a customer row, validated as Business Central validates
 * them: Blocked is one of its options, the payment terms and tax area ids point to existing
 * records (the tax area also sets the customer's tax area code and description, and makes it tax
 * liable).
 */
function applyCustomerFields(row: Row, fields: Row, store: Store): void {
  for (const field of READ_ONLY_CUSTOMER_FIELDS) {
    if (field in fields) throw new ODataError(400, 'BadRequest_InvalidRequestBody', `The property '${field}' is read-only.`);
  }
  if ('displayName' in fields && !fields.displayName) {
    throw new ODataError(400, 'Application_DialogException', 'The displayName of a customer must not be blank.');
  }
  if ('blocked' in fields) {
    const blocked = fields.blocked === null || fields.blocked === BLANKS.Enum ? ' ' : String(fields.blocked);
    if (!CUSTOMER_BLOCKED.has(blocked)) {
      throw new ODataError(400, 'BadRequest_InvalidRequestBody', `The value '${blocked}' is not an option of the property 'blocked'.`);
    }
    fields.blocked = blocked;
  }
  if ('paymentTermsId' in fields) {
    const id = fields.paymentTermsId === null ? ZERO_GUID : String(fields.paymentTermsId).toLowerCase();
    const terms = rowsOf(store, 'paymentTerms').find((candidate) => String(candidate.id).toLowerCase() === id);
    if (id !== ZERO_GUID && !terms) throw notFound('Payment Terms', 'Id', fields.paymentTermsId);
    fields.paymentTermsId = terms ? terms.id : null;
  }
  if ('taxAreaId' in fields) {
    const id = fields.taxAreaId === null ? ZERO_GUID : String(fields.taxAreaId).toLowerCase();
    const area = rowsOf(store, 'taxAreas').find((candidate) => String(candidate.id).toLowerCase() === id);
    if (id !== ZERO_GUID && !area) throw notFound('Tax Area', 'Id', fields.taxAreaId);
    fields.taxAreaId = area ? area.id : null;
    fields.taxAreaCode = area ? area.code : null;
    fields.taxAreaDisplayName = area ? area.displayName : null;
    if (area) fields.taxLiable = true;
  }
  Object.assign(row, fields);
}

/**
 * A new customer (standard API v2.0), as Business Central inserts one: a blank number is taken
 * from the customer number series (C10001, C10002, …), a number given must be free; Blocked is
 * blank, the credit limit and balance 0 unless the body says otherwise.
 */
function insertCustomer(body: Record<string, unknown>, store: Store, now: Date): Row {
  const fields = typedProperties('customer', CUSTOMER_FIELDS, body);
  const customers = rowsOf(store, 'customers');
  if (!fields.displayName) throw new ODataError(400, 'Application_DialogException', 'A displayName must be provided.');
  const given = typeof fields.number === 'string' ? fields.number : null;
  if (given && customers.some((row) => row.number === given)) {
    throw new ODataError(
      409,
      'Internal_EntityWithSameKeyExists',
      `The record in table Customer already exists. Identification fields and values: No.='${given}'`,
    );
  }
  const row: Row = {
    id: randomUUID(),
    type: 'Company',
    currencyCode: null,
    paymentTermsId: null,
    creditLimit: 0,
    blocked: ' ',
    taxLiable: false,
    taxAreaId: null,
    taxAreaCode: null,
    taxAreaDisplayName: null,
    crmReference: null,
    balanceDue: 0,
  };
  delete fields.number;
  applyCustomerFields(row, fields, store);
  // Taken from the series only once the body is valid: a refused insert uses up no number.
  row.number = given ?? nextNumber(store, CUSTOMER_SERIES);
  row.customerNumber = row.number;
  row.lastModifiedDateTime = now.toISOString();
  customers.push(row);
  return row;
}

/** A customer PATCHed (standard API v2.0): its number is its own to keep here (no rename). */
function updateCustomer(row: Row, body: Record<string, unknown>, store: Store, now: Date): void {
  const fields = typedProperties('customer', CUSTOMER_FIELDS, body);
  if ('number' in fields && fields.number !== row.number) {
    throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'Renaming a customer is not served here.');
  }
  delete fields.number;
  applyCustomerFields(row, fields, store);
  row.lastModifiedDateTime = now.toISOString();
}

/**
 * The CRM reference of a customer set or cleared (extension): a reference another customer holds
 * is refused with 409 Internal_EntityWithSameKeyExists, as the extension's unique key refuses it.
 */
function updateCustomerReference(row: Row, body: Record<string, unknown>, store: Store, now: Date): void {
  const fields = typedProperties('customerReference', CUSTOMER_REFERENCE_FIELDS, body);
  for (const field of Object.keys(fields)) {
    if (field !== 'crmReference') throw new ODataError(400, 'BadRequest_InvalidRequestBody', `The property '${field}' is read-only.`);
  }
  if (!('crmReference' in fields)) return;
  const reference = fields.crmReference ?? null;
  const holder =
    reference === null ? undefined : rowsOf(store, 'customers').find((other) => other !== row && other.crmReference === reference);
  if (holder) {
    throw new ODataError(
      409,
      'Internal_EntityWithSameKeyExists',
      `The record in table Customer already exists. Identification fields and values: CRM Reference='${String(reference)}', No.='${String(holder.number)}'`,
    );
  }
  row.crmReference = reference;
  row.lastModifiedDateTime = now.toISOString();
}

/** The options of a billing schedule's period and status. */
const BILLING_PERIODS = new Set(['Monthly', 'Annual']);
const BILLING_STATUSES = new Set(['Active', 'Suspended']);
const DATE_TEXT = /^\d{4}-\d{2}-\d{2}$/;

const sameKeyExists = (table: string, fields: string) =>
  new ODataError(
    409,
    'Internal_EntityWithSameKeyExists',
    `The record in table ${table} already exists. Identification fields and values: ${fields}`,
  );

/** Validates the fields of a billing schedule body as the extension's table validates them. */
function checkScheduleFields(fields: Row): void {
  if ('lastModifiedDateTime' in fields) {
    throw new ODataError(400, 'BadRequest_InvalidRequestBody', "The property 'lastModifiedDateTime' is read-only.");
  }
  for (const [field, options] of [
    ['billingPeriod', BILLING_PERIODS],
    ['status', BILLING_STATUSES],
  ] as const) {
    if (field in fields && !options.has(String(fields[field]))) {
      throw new ODataError(
        400,
        'BadRequest_InvalidRequestBody',
        `The value '${String(fields[field])}' is not an option of the property '${field}'.`,
      );
    }
  }
  for (const field of ['startDate', 'endDate', 'nextInvoiceDate']) {
    if (fields[field] !== undefined && fields[field] !== null && !DATE_TEXT.test(String(fields[field]))) {
      throw new ODataError(400, 'BadRequest', 'Unable to convert value to Date');
    }
  }
  if ('startDate' in fields && !fields.startDate) {
    throw new ODataError(400, 'Application_FieldValidationException', 'Start Date must have a value in Subscription Billing Schedule.');
  }
}

/**
 * A new billing schedule (extension): the subscription id is its key, given by the body and
 * refused with 409 Internal_EntityWithSameKeyExists when a schedule has it already.
 */
function insertBillingSchedule(body: Record<string, unknown>, store: Store, now: Date): Row {
  const fields = typedProperties('subscriptionBillingSchedule', BILLING_SCHEDULE_FIELDS, body);
  checkScheduleFields(fields);
  for (const field of ['subscriptionId', 'customerNumber', 'itemNumber', 'billingPeriod', 'status', 'startDate', 'currencyCode']) {
    if (!fields[field]) {
      throw new ODataError(400, 'Application_FieldValidationException', `${field} must have a value in Subscription Billing Schedule.`);
    }
  }
  const schedules = rowsOf(store, 'subscriptionBillingSchedules');
  if (schedules.some((row) => row.subscriptionId === fields.subscriptionId)) {
    throw sameKeyExists('Subscription Billing Schedule', `Subscription Id='${String(fields.subscriptionId)}'`);
  }
  const row: Row = {
    subscriptionId: fields.subscriptionId,
    customerNumber: fields.customerNumber,
    itemNumber: fields.itemNumber,
    quantity: fields.quantity ?? 0,
    unitPrice: fields.unitPrice ?? 0,
    billingPeriod: fields.billingPeriod,
    status: fields.status,
    startDate: fields.startDate,
    endDate: fields.endDate ?? null,
    nextInvoiceDate: fields.nextInvoiceDate ?? null,
    version: fields.version ?? 0,
    currencyCode: fields.currencyCode,
    lastModifiedDateTime: now.toISOString(),
  };
  schedules.push(row);
  return row;
}

/** A billing schedule PATCHed (extension): the fields the body names, its key excepted. */
function updateBillingSchedule(row: Row, body: Record<string, unknown>, _store: Store, now: Date): void {
  const fields = typedProperties('subscriptionBillingSchedule', BILLING_SCHEDULE_FIELDS, body);
  if ('subscriptionId' in fields && fields.subscriptionId !== row.subscriptionId) {
    throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'Renaming a billing schedule is not served here.');
  }
  checkScheduleFields(fields);
  for (const field of ['customerNumber', 'itemNumber', 'billingPeriod', 'status', 'currencyCode']) {
    if (field in fields && !fields[field]) {
      throw new ODataError(400, 'Application_FieldValidationException', `${field} must have a value in Subscription Billing Schedule.`);
    }
  }
  Object.assign(row, fields);
  row.lastModifiedDateTime = now.toISOString();
}

/**
 * A change key recorded (extension): the key is the record's, refused with 409
 * Internal_EntityWithSameKeyExists when it is recorded already.
 */
function insertBillingChange(body: Record<string, unknown>, store: Store, now: Date): Row {
  const fields = typedProperties('subscriptionBillingChange', BILLING_CHANGE_FIELDS, body);
  if ('appliedDateTime' in fields) {
    throw new ODataError(400, 'BadRequest_InvalidRequestBody', "The property 'appliedDateTime' is read-only.");
  }
  if (typeof fields.changeKey !== 'string' || !fields.subscriptionId) {
    throw new ODataError(
      400,
      'Application_FieldValidationException',
      'changeKey and subscriptionId must have a value in Subscription Billing Change.',
    );
  }
  const changes = rowsOf(store, 'subscriptionBillingChanges');
  if (changes.some((row) => row.changeKey === fields.changeKey)) {
    throw sameKeyExists('Subscription Billing Change', `Change Key='${fields.changeKey}'`);
  }
  const row: Row = {
    changeKey: fields.changeKey,
    subscriptionId: fields.subscriptionId,
    version: fields.version ?? 0,
    appliedDateTime: now.toISOString(),
  };
  changes.push(row);
  return row;
}

/** A change record PATCHed (extension): only its version. */
function updateBillingChange(row: Row, body: Record<string, unknown>, _store: Store, now: Date): void {
  const fields = typedProperties('subscriptionBillingChange', BILLING_CHANGE_FIELDS, body);
  for (const field of Object.keys(fields)) {
    if (field !== 'version') throw new ODataError(400, 'BadRequest_InvalidRequestBody', `The property '${field}' is read-only.`);
  }
  if ('version' in fields) row.version = fields.version;
  row.appliedDateTime = now.toISOString();
}

interface Incoming {
  method: string;
  pathname: string;
  search: string;
  headers: Record<string, string | undefined>;
  body: unknown;
}

/** Answers one request (or one `$batch` operation). */
function handle(context: Context, request: Incoming): Answer {
  try {
    const answer = dispatch(context, request);
    return { ...answer, headers: { ...JSON_HEADERS, ...answer.headers } };
  } catch (error) {
    if (error instanceof ODataError) return errorAnswer(error);
    throw error;
  }
}

function dispatch(context: Context, request: Incoming): Answer {
  const route = parseRoute(context, request.pathname);
  if (route.batch) {
    if (request.method !== 'POST') throw new ODataError(405, 'BadRequest_MethodNotAllowed', '$batch takes POST.');
    return batch(context, route, request);
  }
  if (route.company !== null && route.company.toLowerCase() !== context.companyId.toLowerCase() && route.set !== 'companies') {
    throw new ODataError(404, 'Internal_CompanyNotFound', `The company '${route.company}' does not exist.`);
  }
  const set = entitySetOf(route);
  if (request.method === 'GET') {
    return route.key
      ? readEntity(context, route, set, request.search)
      : readList(context, route, set, request.search, request.headers.prefer);
  }
  if (request.method === 'POST') return create(context, route, set, request.body, request.search);
  if (request.method === 'PATCH') return patch(context, route, set, request.body, request.search, request.headers['if-match']);
  if (request.method === 'DELETE') return remove(context, route, set, request.headers['if-match']);
  throw new ODataError(405, 'BadRequest_MethodNotAllowed', `'${request.method}' requests for '${route.set}' are not allowed.`);
}

/** JSON `$batch`: each operation, relative to the API root, answered as if sent alone. */
function batch(context: Context, route: Route, request: Incoming): Answer {
  const requests = (request.body as { requests?: unknown } | null)?.requests;
  if (!Array.isArray(requests)) throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'A $batch body holds a "requests" array.');
  if (requests.length > 100) throw new ODataError(400, 'BadRequest_InvalidRequestBody', 'A $batch request holds at most 100 operations.');
  const responses = requests.map((operation: { id?: unknown; method?: unknown; url?: unknown; headers?: unknown; body?: unknown }) => {
    const url = new URL(String(operation.url), `${context.origin}${route.root}/`);
    const headers = Object.fromEntries(
      Object.entries((operation.headers ?? {}) as Record<string, string>).map(([name, value]) => [name.toLowerCase(), value]),
    );
    const answer = handle(context, {
      method: String(operation.method ?? 'GET').toUpperCase(),
      pathname: url.pathname,
      search: url.search,
      headers: { ...request.headers, ...headers },
      body: operation.body,
    });
    return { id: operation.id, status: answer.status, headers: answer.headers, body: answer.body };
  });
  return { status: 200, headers: {}, body: { responses } };
}

// ---------------------------------------------------------------------------------------------
// HTTP: faults, the bearer token check, the request log.
// ---------------------------------------------------------------------------------------------

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function send(response: ServerResponse, answer: Answer): void {
  if (response.destroyed || response.writableEnded) return;
  response.writeHead(answer.status, answer.headers);
  response.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts the server on a free port of 127.0.0.1. */
export async function startBusinessCentralServer(options: BusinessCentralServerOptions): Promise<BusinessCentralServer> {
  const tenant = options.tenant ?? 'concord-test';
  const environment = options.environment ?? 'production';
  const companyId = options.companyId ?? guidOf('company');
  const token = options.token ?? `test-${randomUUID()}`;
  const extension = options.extension ?? { publisher: 'concord', group: 'erp', version: 'v1.0' };
  const maxUrlLength = options.maxUrlLength ?? 2_048;
  const store = loadStore(
    options.erp,
    { id: companyId, name: 'Embedded ERP', currency: options.localCurrency ?? 'USD' },
    options.taxAreaDescriptions ?? {},
  );
  const requests: RequestLogEntry[] = [];
  const queued: Fault[] = [];
  let held: { answerAfterMs: number | null; method: WriteMethod; entitySet: string | null } | null = null;

  const faults: FaultSwitches = {
    latencyMs: 0,
    failNext(count, fault) {
      for (let i = 0; i < count; i += 1) queued.push(fault);
    },
    commitThenTimeout(switchOptions = {}) {
      held = {
        answerAfterMs: switchOptions.answerAfterMs ?? null,
        method: switchOptions.method ?? 'POST',
        entitySet: switchOptions.entitySet ?? null,
      };
    },
    clear() {
      queued.length = 0;
      held = null;
      faults.latencyMs = 0;
    },
  };

  const server = createServer((request, response) => {
    void serve(request, response).catch((error: unknown) => {
      send(response, { status: 500, headers: JSON_HEADERS, body: { error: { code: 'Internal_ServerError', message: String(error) } } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const prefix = `/v2.0/${tenant}/${environment}`;
  const context: Context = { store, companyId, prefix, extension, now: options.now ?? (() => new Date()), origin };

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const target = new URL(request.url ?? '/', origin);
    const entry: RequestLogEntry = {
      method: request.method ?? 'GET',
      url: request.url ?? '/',
      ...describe(target.pathname),
      query: Object.fromEntries(Object.entries(parseQueryString(target.search)).filter(([name]) => name.startsWith('$'))),
      operations: [],
      ifMatch: typeof request.headers['if-match'] === 'string' ? request.headers['if-match'] : null,
      body: undefined,
      status: null,
      fault: null,
    };
    requests.push(entry);
    const text = await readBody(request);
    if (faults.latencyMs) await sleep(faults.latencyMs);
    const answer = (value: Answer) => {
      entry.status = value.status;
      send(response, value);
    };

    const next = queued[0];
    const write = entry.method === 'PATCH' || entry.method === 'DELETE';
    const fault = next && (next.kind !== 'entityChanged' || write) ? queued.shift() : undefined;
    if (fault) {
      entry.fault = fault.kind;
      if (fault.kind === 'reset') {
        request.socket.resetAndDestroy();
        return;
      }
      const error =
        fault.kind === 'rateLimit'
          ? new ODataError(429, 'Application_TooManyRequests', 'Too many requests reached. Try again later.', {
              'retry-after': String(fault.retryAfterSeconds),
            })
          : fault.kind === 'entityChanged'
            ? new ODataError(409, 'Request_EntityChanged', 'Another user has already changed the record.')
            : new ODataError(fault.status ?? 503, 'Internal_ServiceUnavailable', 'The service is temporarily unavailable.');
      return answer(errorAnswer(error));
    }
    if (entry.url.length > maxUrlLength) {
      return answer(
        errorAnswer(new ODataError(414, 'BadRequest_RequestUriTooLong', `The request URL is longer than ${maxUrlLength} characters.`)),
      );
    }
    if (request.headers.authorization !== `Bearer ${token}`) {
      return answer(
        errorAnswer(
          new ODataError(401, 'Authentication_InvalidCredentials', 'The server has rejected the client credentials.', {
            'www-authenticate': `Bearer authorization_uri="https://login.microsoftonline.com/${tenant}/oauth2/authorize"`,
          }),
        ),
      );
    }
    let body: unknown;
    try {
      body = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      return answer(errorAnswer(new ODataError(400, 'BadRequest_InvalidRequestBody', 'The request body is not valid JSON.')));
    }
    entry.body = body;
    if (entry.entitySet === '$batch') {
      entry.operations = ((body as { requests?: { url?: unknown }[] } | undefined)?.requests ?? []).map((operation) =>
        String(operation.url),
      );
    }
    const headers = Object.fromEntries(
      Object.entries(request.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]),
    );
    const result = handle(context, { method: entry.method, pathname: target.pathname, search: target.search, headers, body });

    // "Commit, then time out": the entity is created (updated, deleted), the answer comes late or never.
    const hold = held as { answerAfterMs: number | null; method: WriteMethod; entitySet: string | null } | null;
    const committed = result.status === ({ POST: 201, PATCH: 200, DELETE: 204 } as Record<string, number>)[entry.method];
    const targeted = hold !== null && (hold.entitySet === null || hold.entitySet === entry.entitySet);
    if (hold && targeted && entry.method === hold.method && entry.entitySet !== '$batch' && committed) {
      held = null;
      entry.fault = 'commitThenTimeout';
      if (hold.answerAfterMs !== null) setTimeout(() => answer(result), hold.answerAfterMs);
      return;
    }
    answer(result);
  }

  /**
   * The resource a notification names a record by: the standard API's entity set over the table
   * (shipments through the extension's page, as the standard salesShipments notify nothing).
   */
  function resourceOf(table: string, id: string): string {
    const { publisher, group, version } = extension;
    if (table === 'salesShipments') return `api/${publisher}/${group}/${version}/companies(${companyId})/shipments(${id})`;
    return `api/v2.0/companies(${companyId})/${table}(${id})`;
  }

  function describe(pathname: string): Pick<RequestLogEntry, 'api' | 'entitySet'> {
    try {
      const route = parseRoute(context, pathname);
      return { api: route.api, entitySet: route.batch ? '$batch' : route.set };
    } catch {
      return { api: null, entitySet: null };
    }
  }

  return {
    baseUrl: `${origin}${prefix}`,
    companyId,
    token,
    extension,
    requests,
    faults,
    returnOrders(externalDocumentNumber) {
      const rows = rowsOf(store, 'salesReturnOrders');
      return externalDocumentNumber === undefined ? rows : rows.filter((row) => row.externalDocumentNumber === externalDocumentNumber);
    },
    salesOrders(externalDocumentNumber) {
      const key = externalDocumentNumber?.toUpperCase();
      const lines = rowsOf(store, 'salesOrderLines');
      return rowsOf(store, 'salesOrders')
        .filter((row) => key === undefined || String(row.externalDocumentNumber ?? '').toUpperCase() === key)
        .map((row) => ({ ...row, lines: lines.filter((line) => line.documentId === row.id) }));
    },
    customers() {
      return rowsOf(store, 'customers');
    },
    billingSchedules(subscriptionId) {
      const rows = rowsOf(store, 'subscriptionBillingSchedules');
      return subscriptionId === undefined ? rows : rows.filter((row) => row.subscriptionId === subscriptionId);
    },
    billingChanges(subscriptionId) {
      const rows = rowsOf(store, 'subscriptionBillingChanges');
      return subscriptionId === undefined ? rows : rows.filter((row) => row.subscriptionId === subscriptionId);
    },
    change(table, id, fields) {
      const row = rowsOf(store, table).find((candidate) => String(candidate.id).toLowerCase() === id.toLowerCase());
      if (!row) throw new Error(`no ${table} record ${id}`);
      const at = context.now().toISOString();
      Object.assign(row, fields, { lastModifiedDateTime: at });
      return { row, notification: { resource: resourceOf(table, String(row.id)), changeType: 'updated', lastModifiedDateTime: at } };
    },
    remove(table, id) {
      const rows = rowsOf(store, table);
      const at = rows.findIndex((candidate) => String(candidate.id).toLowerCase() === id.toLowerCase());
      if (at < 0) throw new Error(`no ${table} record ${id}`);
      const [row] = rows.splice(at, 1);
      if (table === 'salesOrders') {
        const lines = rowsOf(store, 'salesOrderLines');
        for (let i = lines.length - 1; i >= 0; i -= 1) if (lines[i]!.documentId === row!.id) lines.splice(i, 1);
      }
      return { resource: resourceOf(table, String(row!.id)), changeType: 'deleted', lastModifiedDateTime: context.now().toISOString() };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
