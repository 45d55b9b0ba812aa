import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../../platform/sqlite.ts';
import { readBody } from '../http.ts';

/**
 * A small stand-in for SAP S/4HANA Cloud's OData V2 APIs, answering on 127.0.0.1 in their wire
 * shapes: `{"d":{"results":[…],"__next"}}` with a server-side page size, `__metadata` with ETags,
 * `/Date(ms)/` dates, decimals as strings, `{"error":{"code","message":{"lang","value"}}}`
 * errors, multipart `$batch` with changesets (the outer answer 200 whatever the inner ones
 * say), CSRF tokens bound to session cookies, If-Match on updates, and an OAuth 2.0
 * client-credentials token endpoint. Its data is loaded from an embedded ERP database, so an
 * adapter reading it can be compared with the embedded adapter reading the database itself.
 * Custom fields (`YY1_…`) and the YY1_SERIALNUMBER custom business object stand for the
 * deployment's key-user extensions.
 */
export interface S4HanaServerOptions {
  erp: Database;
  /** Entities per page before `__next` (S/4HANA's server-side paging). */
  pageSize?: number;
  companyCurrency?: string;
  clientId?: string;
  clientSecret?: string;
}

export interface RequestLogEntry {
  method: string;
  url: string;
  /** The service addressed (`API_SALES_ORDER_SRV`), or null (the token endpoint). */
  service: string | null;
  /** The entity set, `$batch`, or null (the service root). */
  entitySet: string | null;
  query: Record<string, string>;
  /** The request lines of a `$batch`'s operations (`GET A_SalesOrder?…`, `POST A_CustomerReturn`). */
  operations: string[];
  csrfToken: string | null;
  ifMatch: string | null;
  status: number | null;
  fault: string | null;
}

export type Fault =
  | { kind: 'rateLimit'; retryAfterSeconds: number }
  | { kind: 'serverError'; status?: number }
  /** The next write (POST/PATCH) is refused as if its CSRF token were not valid. */
  | { kind: 'csrfRejected' }
  /** The next `$batch` answers 200, with its first operation failing inside. */
  | { kind: 'innerError'; status: number; code: string; message: string };

export interface FaultSwitches {
  failNext(count: number, fault: Fault): void;
  /** Forgets every CSRF token, as when the session expired. */
  expireCsrf(): void;
  /**
   * The next changeset (or DELETE) is committed and its answer sent after `answerAfterMs` (longer
   * than the adapter waits).
   */
  commitThenTimeout(answerAfterMs: number): void;
  clear(): void;
}

export interface S4HanaServer {
  /** The API host, as the adapter's `baseUrl`. */
  baseUrl: string;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  companyCurrency: string;
  requests: RequestLogEntry[];
  faults: FaultSwitches;
  /** The sales orders held, all or those with one external document number (PurchaseOrderByCustomer). */
  salesOrders(externalDocumentNumber?: string): readonly Row[];
  /** The customer returns held, all or those with one external document number. */
  customerReturns(externalDocumentNumber?: string): readonly Row[];
  customer(number: string): Row | undefined;
  close(): Promise<void>;
}

type Row = Record<string, unknown>;
/** Entity sets by `${service}/${set}`; navigation properties (`to_…`) hold their entities. */
export type S4Store = Map<string, Row[]>;

const d = (date: string | null | undefined) => (date ? `/Date(${Date.parse(`${date.slice(0, 10)}T00:00:00Z`)})/` : null);
const dec = (value: unknown) => (Math.round(Number(value ?? 0) * 100) / 100).toFixed(2);
const qty = (value: unknown) => Number(value ?? 0).toFixed(3);
const RETURN_REASONS: Record<string, string> = {
  DEFECTIVE: '101',
  DAMAGED_IN_TRANSIT: '102',
  WRONG_ITEM: '103',
  NOT_AS_DESCRIBED: '104',
  OTHER: '105',
};
const PROCESS_STATUS: Record<string, string> = { Open: 'A', Released: 'B', Posted: 'C' };

const SETS = {
  partners: 'API_BUSINESS_PARTNER/A_BusinessPartner',
  customers: 'API_BUSINESS_PARTNER/A_Customer',
  addresses: 'API_BUSINESS_PARTNER/A_BusinessPartnerAddress',
  stock: 'API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod',
  products: 'API_PRODUCT_SRV/A_Product',
  orders: 'API_SALES_ORDER_SRV/A_SalesOrder',
  orderItems: 'API_SALES_ORDER_SRV/A_SalesOrderItem',
  deliveries: 'API_OUTBOUND_DELIVERY_SRV/A_OutbDeliveryHeader',
  deliveryItems: 'API_OUTBOUND_DELIVERY_SRV/A_OutbDeliveryItem',
  serials: 'YY1_SERIALNUMBER_CDS/YY1_SERIALNUMBER',
  invoices: 'API_BILLING_DOCUMENT_SRV/A_BillingDocument',
  invoiceItems: 'API_BILLING_DOCUMENT_SRV/A_BillingDocumentItem',
  returns: 'API_CUSTOMER_RETURN_SRV/A_CustomerReturn',
  returnItems: 'API_CUSTOMER_RETURN_SRV/A_CustomerReturnItem',
} as const;

/** Key fields of the entity sets, as `Set(key)` addresses an entity. */
const KEYS: Record<string, string> = {
  A_BusinessPartner: 'BusinessPartner',
  A_Customer: 'Customer',
  A_SalesOrder: 'SalesOrder',
  A_CustomerReturn: 'CustomerReturn',
};

function returnItem(returnNumber: string, line: Row): Row {
  return {
    CustomerReturn: returnNumber,
    CustomerReturnItem: String(line.sequence),
    Material: line.lineObjectNumber,
    RequestedQuantity: qty(line.quantity),
    NetPriceAmount: dec(line.unitPrice),
    ReturnReason: RETURN_REASONS[String(line.returnReasonCode)] ?? '105',
    ReferenceSDDocument: line.orderNumber ?? '',
    ReferenceSDDocumentItem: line.orderLineSequence === null || line.orderLineSequence === undefined ? '' : String(line.orderLineSequence),
    YY1_SerialNumber_SDI: line.serialNumber ?? '',
    YY1_BillingDocument_SDI: line.appliesToInvoiceNumber ?? '',
  };
}

/** The embedded ERP's tables in S/4HANA's entity shapes. */
export function loadS4HanaData(db: Database, companyCurrency = 'USD'): S4Store {
  const all = (sql: string) => db.prepare(sql).all() as Row[];
  const store: S4Store = new Map(Object.values(SETS).map((key) => [key, [] as Row[]]));
  const put = (key: string, row: Row) => store.get(key)!.push(row);
  const terms = new Map(all('SELECT * FROM paymentTerms').map((row) => [row.id, row]));
  for (const c of all('SELECT * FROM customers ORDER BY rowid')) {
    const term = terms.get(c.paymentTermsId);
    const customer: Row = {
      Customer: c.number,
      CustomerName: c.displayName,
      VATRegistration: c.taxRegistrationNumber ?? '',
      OrderIsBlockedForCustomer: String(c.blocked).trim() ? '01' : '',
      DeliveryIsBlocked: '',
      BillingIsBlockedForCustomer: '',
      YY1_CreditLimit_cus: dec(c.creditLimit),
      YY1_BalanceDue_cus: dec(c.balanceDue),
      YY1_TaxArea_cus: c.taxAreaCode ?? '',
      YY1_PaymentTermsName_cus: term?.displayName ?? '',
      YY1_CRMReference_cus: c.crmReference ?? '',
      to_CustomerSalesArea: [
        {
          Customer: c.number,
          SalesOrganization: '1710',
          DistributionChannel: '10',
          Division: '00',
          Currency: c.currencyCode,
          CustomerPaymentTerms: term?.code ?? '',
        },
      ],
    };
    put(SETS.customers, customer);
    put(SETS.addresses, {
      BusinessPartner: c.number,
      AddressID: '1',
      StreetName: c.addressLine1 ?? '',
      CityName: c.city ?? '',
      Region: c.state ?? '',
      Country: c.country ?? '',
      PostalCode: c.postalCode ?? '',
    });
    put(SETS.partners, {
      BusinessPartner: c.number,
      BusinessPartnerUUID: c.id,
      BusinessPartnerCategory: '2',
      BusinessPartnerFullName: c.displayName,
      to_Customer: customer,
    });
  }
  for (const i of all('SELECT * FROM items ORDER BY rowid')) {
    put(SETS.products, {
      Product: i.number,
      ProductType: 'FERT',
      ProductGroup: i.itemCategoryCode ?? '',
      YY1_UnitPrice_PRD: dec(i.unitPrice),
      YY1_WarrantyMonths_PRD: String(i.warrantyMonths ?? 0),
      to_Description: [{ Product: i.number, Language: 'EN', ProductDescription: i.displayName }],
      to_ProductBasicText: i.description ? [{ Product: i.number, Language: 'EN', LongText: i.description }] : [],
      to_Plant: [{ Product: i.number, Plant: '1710', SerialNumberProfile: i.itemTrackingCode === 'SN' ? 'SN01' : '' }],
    });
    put(SETS.stock, {
      Material: i.number,
      Plant: '1710',
      StorageLocation: '171A',
      InventoryStockType: '01',
      MatlWrhsStkQtyInMatlBaseUnit: qty(i.inventory),
      MaterialBaseUnit: 'PC',
    });
  }
  const orderLines = all('SELECT * FROM salesOrderLines ORDER BY documentId, sequence');
  for (const o of all('SELECT * FROM salesOrders ORDER BY rowid')) {
    const lines = orderLines.filter((line) => line.documentId === o.id);
    const anyShipped = lines.some((line) => Number(line.shippedQuantity) > 0);
    const items = lines.map((line) => ({
      SalesOrder: o.number,
      SalesOrderItem: String(line.sequence),
      Material: line.lineObjectNumber ?? '',
      SalesOrderItemText: line.description ?? '',
      RequestedQuantity: qty(line.quantity),
      NetPriceAmount: dec(line.unitPrice),
      NetAmount: dec(line.amountExcludingTax),
      TransactionCurrency: o.currencyCode,
      to_ScheduleLine: [
        {
          SalesOrder: o.number,
          SalesOrderItem: String(line.sequence),
          ScheduleLine: '1',
          ConfirmedDeliveryDate: d(line.shipmentDate as string | null),
          DeliveredQtyInOrderQtyUnit: qty(line.shippedQuantity),
        },
      ],
    }));
    for (const item of items) put(SETS.orderItems, item);
    put(SETS.orders, {
      SalesOrder: o.number,
      SalesOrderType: 'OR',
      SalesOrderDate: d(o.orderDate as string),
      SoldToParty: o.customerNumber,
      PurchaseOrderByCustomer: o.externalDocumentNumber ?? '',
      RequestedDeliveryDate: d(o.requestedDeliveryDate as string | null),
      TransactionCurrency: o.currencyCode,
      TotalNetAmount: dec(o.totalAmountExcludingTax),
      YY1_TotalGrossAmount_SDH: dec(o.totalAmountIncludingTax),
      OverallDeliveryStatus: o.fullyShipped ? 'C' : anyShipped ? 'B' : 'A',
      YY1_ReleaseStatus_SDH: o.status,
      to_Item: items,
    });
  }
  const shipmentLines = all('SELECT * FROM salesShipmentLines ORDER BY documentNo, sequence');
  for (const s of all('SELECT * FROM salesShipments ORDER BY rowid')) {
    const items = shipmentLines
      .filter((line) => line.documentNo === s.number)
      .map((line) => ({
        DeliveryDocument: s.number,
        DeliveryDocumentItem: String(line.sequence),
        Material: line.lineObjectNumber,
        ActualDeliveryQuantity: qty(line.quantity),
        ReferenceSDDocument: s.orderNumber,
        ReferenceSDDocumentItem: '',
      }));
    for (const item of items) put(SETS.deliveryItems, item);
    put(SETS.deliveries, {
      DeliveryDocument: s.number,
      SoldToParty: s.customerNumber,
      ActualGoodsMovementDate: d(s.postingDate as string),
      ProofOfDeliveryDate: d(s.deliveredDate as string | null),
      BillOfLading: s.packageTrackingNumber ?? '',
      to_DeliveryDocumentItem: items,
      to_DeliveryDocumentPartner: s.shippingAgentCode
        ? [{ DeliveryDocument: s.number, PartnerFunction: 'SP', Supplier: s.shippingAgentCode }]
        : [],
    });
  }
  for (const s of all('SELECT * FROM serialNumbers ORDER BY serialNumber')) {
    put(SETS.serials, {
      SerialNumber: s.serialNumber,
      Product: s.itemNumber,
      Customer: s.customerNumber,
      SalesOrder: s.orderNumber,
      DeliveryDocument: s.shipmentNumber,
      WarrantyStartDate: d(s.warrantyStartDate as string),
      WarrantyEndDate: d(s.warrantyEndDate as string),
      WarrantyCode: s.warrantyCode,
    });
  }
  for (const i of all('SELECT * FROM salesInvoices ORDER BY rowid')) {
    const items = i.orderNumber ? [{ BillingDocument: i.number, BillingDocumentItem: '10', SalesDocument: i.orderNumber }] : [];
    for (const item of items) put(SETS.invoiceItems, item);
    const status = String(i.status);
    put(SETS.invoices, {
      BillingDocument: i.number,
      BillingDocumentDate: d(i.invoiceDate as string),
      SoldToParty: i.customerNumber,
      TransactionCurrency: i.currencyCode,
      TotalNetAmount: dec(i.totalAmountIncludingTax),
      TotalTaxAmount: '0.00',
      BillingDocumentIsCancelled: status === 'Canceled' || status === 'Corrective',
      AccountingPostingStatus: status === 'Draft' || status === 'In Review' ? 'A' : 'C',
      InvoiceClearingStatus: status === 'Paid' ? 'C' : 'A',
      YY1_NetDueDate_BDH: d(i.dueDate as string),
      YY1_OpenAmount_BDH: dec(i.remainingAmount),
      YY1_ClearingDate_BDH: d(i.closedDate as string | null),
      to_Item: items,
    });
  }
  const returnLines = all('SELECT * FROM salesReturnOrderLines ORDER BY documentId, sequence');
  for (const r of all('SELECT * FROM salesReturnOrders ORDER BY rowid')) {
    const items = returnLines.filter((line) => line.documentId === r.id).map((line) => returnItem(String(r.number), line));
    for (const item of items) put(SETS.returnItems, item);
    const created = new Date(String(r.createdDateTime));
    put(SETS.returns, {
      CustomerReturn: r.number,
      CustomerReturnType: 'CBAR',
      SoldToParty: r.customerNumber,
      PurchaseOrderByCustomer: r.externalDocumentNumber,
      TransactionCurrency: r.currencyCode ?? companyCurrency,
      SDDocumentReason: RETURN_REASONS[String(r.returnReasonCode)] ?? '105',
      CreationDate: d(created.toISOString()),
      CreationTime: timeOf(created),
      OverallSDProcessStatus: PROCESS_STATUS[String(r.status)] ?? 'A',
      YY1_SupportCase_SDH: r.caseNumber ?? '',
      YY1_ReturnResolution_SDH: r.resolution ?? '',
      to_Item: items,
    });
  }
  return store;
}

function timeOf(at: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `PT${pad(at.getUTCHours())}H${pad(at.getUTCMinutes())}M${pad(at.getUTCSeconds())}S`;
}

// ---------------------------------------------------------------------------------------------
// $filter: `field op literal` terms with and/or/parentheses, as the adapters send them.
// ---------------------------------------------------------------------------------------------

type Literal = { kind: 'string'; value: string } | { kind: 'date'; value: number } | { kind: 'bool'; value: boolean };
type Filter = { op: 'and' | 'or'; left: Filter; right: Filter } | { op: string; field: string; value: Literal };

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

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s*(datetime'[^']*'|'(?:[^']|'')*'|\(|\)|[A-Za-z0-9_./-]+)/y;
  let match: RegExpExecArray | null;
  while (pattern.lastIndex < text.length && (match = pattern.exec(text))) tokens.push(match[1]!);
  if (pattern.lastIndex < text.trimEnd().length) throw new ODataError(400, '/IWBEP/CM_MGW_RT/022', `Invalid filter: ${text}`);
  return tokens;
}

function parseFilter(text: string): Filter {
  const tokens = tokenize(text);
  let at = 0;
  const fail = (): never => {
    throw new ODataError(400, '/IWBEP/CM_MGW_RT/022', `Invalid filter at token ${at}: ${text}`);
  };
  function primary(): Filter {
    if (tokens[at] === '(') {
      at += 1;
      const inner = or();
      if (tokens[at++] !== ')') fail();
      return inner;
    }
    const field = tokens[at++] ?? fail();
    const op = tokens[at++] ?? fail();
    if (!['eq', 'ne', 'lt', 'le', 'gt', 'ge'].includes(op)) fail();
    const raw = tokens[at++] ?? fail();
    let value: Literal;
    if (raw.startsWith('datetime')) value = { kind: 'date', value: Date.parse(`${raw.slice(9, -1)}Z`) };
    else if (raw.startsWith("'")) value = { kind: 'string', value: raw.slice(1, -1).replace(/''/g, "'") };
    else if (raw === 'true' || raw === 'false') value = { kind: 'bool', value: raw === 'true' };
    else value = fail();
    return { op, field, value };
  }
  function and(): Filter {
    let left = primary();
    while (tokens[at] === 'and') {
      at += 1;
      left = { op: 'and', left, right: primary() };
    }
    return left;
  }
  function or(): Filter {
    let left = and();
    while (tokens[at] === 'or') {
      at += 1;
      left = { op: 'or', left, right: and() };
    }
    return left;
  }
  const filter = or();
  if (at !== tokens.length) fail();
  return filter;
}

const msOf = (value: unknown) => Number(/\/Date\((-?\d+)/.exec(String(value))?.[1] ?? NaN);

function matches(filter: Filter, row: Row): boolean {
  if ('left' in filter)
    return filter.op === 'and'
      ? matches(filter.left, row) && matches(filter.right, row)
      : matches(filter.left, row) || matches(filter.right, row);
  if (!(filter.field in row)) throw new ODataError(400, '/IWBEP/CM_MGW_RT/021', `Property ${filter.field} not found`);
  const actual = row[filter.field];
  const [x, y] =
    filter.value.kind === 'date'
      ? [msOf(actual), filter.value.value]
      : filter.value.kind === 'bool'
        ? [Number(actual), Number(filter.value.value)]
        : [String(actual ?? ''), filter.value.value];
  switch (filter.op) {
    case 'eq':
      return x === y;
    case 'ne':
      return x !== y;
    case 'lt':
      return x < y;
    case 'le':
      return x <= y;
    case 'gt':
      return x > y;
    default:
      return x >= y;
  }
}

function compareField(a: Row, b: Row, field: string): number {
  const [x, y] = [a[field], b[field]];
  if (typeof x === 'string' && x.startsWith('/Date(')) return msOf(x) - msOf(y);
  const [s, t] = [String(x ?? ''), String(y ?? '')];
  return s < t ? -1 : s > t ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', dataserviceversion: '2.0' };
const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({
  status,
  headers: { ...JSON_HEADERS, ...headers },
  body: JSON.stringify(body),
});
const errorAnswer = (error: ODataError): Answer =>
  json(error.status, { error: { code: error.code, message: { lang: 'en', value: error.message } } }, error.headers);
const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  404: 'Not Found',
  412: 'Precondition Failed',
  500: 'Internal Server Error',
};

function etagOf(row: Row): string {
  const plain = Object.fromEntries(Object.entries(row).filter(([key]) => !key.startsWith('to_')));
  return `W/"'${createHash('sha1').update(JSON.stringify(plain)).digest('hex').slice(0, 16)}'"`;
}

function parseQuery(search: string): Record<string, string> {
  const options: Record<string, string> = {};
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (!part) continue;
    const at = part.indexOf('=');
    options[decodeURIComponent(at < 0 ? part : part.slice(0, at))] = decodeURIComponent(at < 0 ? '' : part.slice(at + 1));
  }
  return options;
}

export async function startS4HanaServer(options: S4HanaServerOptions): Promise<S4HanaServer> {
  const pageSize = options.pageSize ?? 50;
  const companyCurrency = options.companyCurrency ?? 'USD';
  const clientId = options.clientId ?? 'concord-comm-user';
  const clientSecret = options.clientSecret ?? `secret-${randomUUID()}`;
  const store = loadS4HanaData(options.erp, companyCurrency);
  const termNames = new Map(
    (options.erp.prepare('SELECT code, displayName FROM paymentTerms').all() as { code: string; displayName: string }[]).map((row) => [
      row.code,
      row.displayName,
    ]),
  );
  const tokens = new Set<string>();
  /** CSRF tokens by session cookie value. */
  const sessions = new Map<string, string>();
  const requests: RequestLogEntry[] = [];
  const queued: Fault[] = [];
  let holdMs: number | null = null;

  const faults: FaultSwitches = {
    failNext(count, fault) {
      for (let i = 0; i < count; i += 1) queued.push(fault);
    },
    expireCsrf() {
      sessions.clear();
    },
    commitThenTimeout(answerAfterMs) {
      holdMs = answerAfterMs;
    },
    clear() {
      queued.length = 0;
      holdMs = null;
    },
  };

  const server = createServer((request, response) => {
    void serve(request, response).catch((error: unknown) => {
      write(response, errorAnswer(new ODataError(500, 'SY/530', String(error))));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const PREFIX = '/sap/opu/odata/sap/';

  function write(response: ServerResponse, answer: Answer): void {
    if (response.headersSent || response.destroyed) return;
    response.writeHead(answer.status, answer.headers);
    response.end(answer.body);
  }

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', origin);
    const method = request.method ?? 'GET';
    const path = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length).split('/') : [];
    const entry: RequestLogEntry = {
      method,
      url: request.url ?? '/',
      service: path[0] ?? null,
      entitySet: path[1] ? decodeURIComponent(path[1]).replace(/\(.*$/, '') : null,
      query: Object.fromEntries(Object.entries(parseQuery(url.search)).filter(([name]) => name.startsWith('$'))),
      operations: [],
      csrfToken: typeof request.headers['x-csrf-token'] === 'string' ? request.headers['x-csrf-token'] : null,
      ifMatch: typeof request.headers['if-match'] === 'string' ? request.headers['if-match'] : null,
      status: null,
      fault: null,
    };
    requests.push(entry);
    const text = await readBody(request);
    const answer = (value: Answer) => {
      entry.status = value.status;
      write(response, value);
    };

    if (url.pathname === '/oauth/token') {
      const form = new URLSearchParams(text);
      if (
        form.get('grant_type') !== 'client_credentials' ||
        form.get('client_id') !== clientId ||
        form.get('client_secret') !== clientSecret
      ) {
        return answer(json(401, { error: 'invalid_client' }));
      }
      const token = `s4-${randomUUID()}`;
      tokens.add(token);
      return answer(json(200, { access_token: token, token_type: 'bearer', expires_in: 43_199, scope: 'uaa.resource' }));
    }
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!bearer || !tokens.has(bearer)) return answer(errorAnswer(new ODataError(401, 'UNAUTHORIZED', 'Unauthorized')));

    const head = queued[0];
    const applies =
      head !== undefined &&
      (head.kind === 'innerError' ? entry.entitySet === '$batch' : head.kind === 'csrfRejected' ? method !== 'GET' : true);
    const fault = applies ? queued.shift() : undefined;
    if (fault?.kind === 'csrfRejected') {
      entry.fault = fault.kind;
      return answer({
        status: 403,
        headers: { 'content-type': 'text/plain', 'x-csrf-token': 'Required' },
        body: 'CSRF token validation failed',
      });
    }
    if (fault && fault.kind !== 'innerError') {
      entry.fault = fault.kind;
      return answer(
        fault.kind === 'rateLimit'
          ? errorAnswer(new ODataError(429, 'TOO_MANY_REQUESTS', 'Rate limit exceeded', { 'retry-after': String(fault.retryAfterSeconds) }))
          : errorAnswer(new ODataError(fault.status ?? 503, '/IWFND/CM_BEC/026', 'Service temporarily unavailable')),
      );
    }

    // CSRF: a token is fetched with a GET; every write must send it with the session's cookies.
    if (method === 'GET' && String(request.headers['x-csrf-token']).toLowerCase() === 'fetch') {
      const session = randomUUID().replace(/-/g, '');
      const token = createHash('sha1').update(session).digest('base64');
      sessions.set(session, token);
      response.setHeader('set-cookie', [
        `SAP_SESSIONID_S4H_100=${session}; path=/; secure; HttpOnly`,
        'sap-usercontext=sap-client=100; path=/',
      ]);
      response.setHeader('x-csrf-token', token);
    } else if (method !== 'GET') {
      const cookies = Object.fromEntries(
        String(request.headers.cookie ?? '')
          .split(';')
          .map((part) => part.trim().split('=') as [string, string?])
          .map(([name, value]) => [name, value ?? '']),
      );
      const valid =
        cookies['sap-usercontext'] === 'sap-client' &&
        sessions.has(cookies.SAP_SESSIONID_S4H_100 ?? '') &&
        sessions.get(cookies.SAP_SESSIONID_S4H_100 ?? '') === request.headers['x-csrf-token'];
      if (!valid) {
        return answer({
          status: 403,
          headers: { 'content-type': 'text/plain', 'x-csrf-token': 'Required' },
          body: 'CSRF token validation failed',
        });
      }
    }

    if (entry.service && entry.entitySet === '$batch' && method === 'POST') {
      const boundary = /boundary=([^;]+)/.exec(String(request.headers['content-type']))?.[1];
      if (!boundary) return answer(errorAnswer(new ODataError(400, '/IWBEP/CM_MGW_RT/004', 'No boundary')));
      const { body, operations, committed } = batch(entry.service, text, boundary, fault?.kind === 'innerError' ? fault : null);
      entry.operations = operations;
      if (fault) entry.fault = fault.kind;
      const result: Answer = { status: 200, headers: { 'content-type': `multipart/mixed; boundary=${body.boundary}` }, body: body.text };
      if (committed && holdMs !== null) {
        const after = holdMs;
        holdMs = null;
        entry.fault = 'commitThenTimeout';
        setTimeout(() => answer(result), after);
        return;
      }
      return answer(result);
    }
    try {
      const headers: Record<string, string> = {};
      if (typeof response.getHeader('x-csrf-token') === 'string') headers['x-csrf-token'] = String(response.getHeader('x-csrf-token'));
      const result = operate(
        entry.service ?? '',
        method,
        url.pathname.slice(PREFIX.length + (entry.service?.length ?? 0) + 1),
        url.search,
        text,
        entry.ifMatch,
      );
      const value = json(result.status, result.body, { ...headers, ...(result.etag ? { etag: result.etag } : {}) });
      if (method === 'DELETE' && result.status < 300 && holdMs !== null) {
        const after = holdMs;
        holdMs = null;
        entry.fault = 'commitThenTimeout';
        setTimeout(() => answer(value), after);
        return;
      }
      return answer(value);
    } catch (error) {
      if (error instanceof ODataError) return answer(errorAnswer(error));
      throw error;
    }
  }

  /** One operation on a service: `resource` is the path below the service root. */
  function operate(
    service: string,
    method: string,
    resource: string,
    search: string,
    text: string,
    ifMatch: string | null,
  ): { status: number; body: unknown; etag?: string } {
    if (!resource)
      return {
        status: 200,
        body: { d: { EntitySets: [...store.keys()].filter((key) => key.startsWith(`${service}/`)).map((key) => key.split('/')[1]) } },
      };
    const match = /^([A-Za-z0-9_]+)(?:\((.*)\))?$/.exec(decodeURIComponent(resource));
    const rows = match ? store.get(`${service}/${match[1]}`) : undefined;
    if (!match || !rows) throw new ODataError(404, '/IWFND/CM_MGW/020', `Resource not found for segment '${resource}'`);
    const set = match[1]!;
    const query = parseQuery(search);
    const uri = (row: Row) => `${origin}${PREFIX}${service}/${set}('${String(row[KEYS[set] ?? ''] ?? '')}')`;
    const shape = (row: Row, expand: string[], depth = ''): Row => {
      const out: Row = {};
      for (const [key, value] of Object.entries(row)) {
        if (!key.startsWith('to_')) out[key] = value;
        else if (expand.some((path) => path === `${depth}${key}` || path.startsWith(`${depth}${key}/`))) {
          out[key] = Array.isArray(value)
            ? { results: (value as Row[]).map((child) => shape(child, expand, `${depth}${key}/`)) }
            : value
              ? shape(value as Row, expand, `${depth}${key}/`)
              : null;
        } else out[key] = { __deferred: { uri: `${uri(row)}/${key}` } };
      }
      return { __metadata: { uri: uri(row), type: `${service}.${set}Type`, etag: etagOf(row) }, ...out };
    };
    const expand = query.$expand ? query.$expand.split(',').map((path) => path.trim()) : [];
    const select = query.$select ? new Set(query.$select.split(',').map((field) => field.trim())) : null;
    const selected = (row: Row): Row =>
      select
        ? Object.fromEntries(
            Object.entries(row).filter(
              ([key]) => key === '__metadata' || select.has(key) || (key.startsWith('to_') && expand.includes(key)),
            ),
          )
        : row;

    if (match[2] !== undefined) {
      const key = match[2].replace(/^'(.*)'$/, '$1').replace(/''/g, "'");
      const row = rows.find((candidate) => candidate[KEYS[set] ?? ''] === key);
      if (!row) throw new ODataError(404, '/IWBEP/CM_MGW_RT/021', `Resource not found for key ${key}`);
      if (method === 'GET') return { status: 200, body: { d: selected(shape(row, expand)) }, etag: etagOf(row) };
      if (method === 'PATCH' && set === 'A_Customer') {
        if (!ifMatch) throw new ODataError(428, '/IWBEP/CM_MGW_RT/025', 'Precondition required: send If-Match');
        if (ifMatch !== '*' && ifMatch !== etagOf(row))
          throw new ODataError(412, '/IWBEP/CM_MGW_RT/024', 'Precondition failed: the entity was changed');
        const changes = JSON.parse(text || '{}') as Row;
        for (const [field, value] of Object.entries(changes)) if (field in row && !field.startsWith('to_')) row[field] = value;
        return { status: 204, body: null };
      }
      if (method === 'DELETE' && set === 'A_SalesOrder') {
        if (!ifMatch) throw new ODataError(428, '/IWBEP/CM_MGW_RT/025', 'Precondition required: send If-Match');
        if (ifMatch !== '*' && ifMatch !== etagOf(row))
          throw new ODataError(412, '/IWBEP/CM_MGW_RT/024', 'Precondition failed: the entity was changed');
        if (row.OverallDeliveryStatus !== 'A') throw new ODataError(400, 'V1/049', `Sales order ${key} has been delivered`);
        store.set(
          SETS.orders,
          rows.filter((candidate) => candidate !== row),
        );
        store.set(
          SETS.orderItems,
          store.get(SETS.orderItems)!.filter((item) => item.SalesOrder !== key),
        );
        return { status: 204, body: null };
      }
      throw new ODataError(405, '/IWBEP/CM_MGW_RT/006', `${method} is not allowed on ${set}`);
    }
    if (method === 'POST' && set === 'A_CustomerReturn') return createReturn(JSON.parse(text) as Row, shape);
    if (method === 'POST' && set === 'A_SalesOrder') return createOrder(JSON.parse(text) as Row, shape);
    if (method === 'POST' && set === 'A_BusinessPartner') return createPartner(JSON.parse(text) as Row, shape);
    if (method !== 'GET') throw new ODataError(405, '/IWBEP/CM_MGW_RT/006', `${method} is not allowed on ${set}`);

    let list = query.$filter ? rows.filter((row) => matches(parseFilter(query.$filter!), row)) : [...rows];
    if (query.$orderby) {
      const order = query.$orderby.split(',').map((part) => {
        const [field, direction] = part.trim().split(/\s+/);
        return { field: field!, sign: direction === 'desc' ? -1 : 1 };
      });
      list.sort((a, b) => {
        for (const { field, sign } of order) {
          const c = compareField(a, b, field);
          if (c) return c * sign;
        }
        return 0;
      });
    }
    const skip = Number(query.$skip ?? 0);
    const end = query.$top !== undefined ? Math.min(list.length, skip + Number(query.$top)) : list.length;
    const start = query.$skiptoken !== undefined ? Number(query.$skiptoken) : skip;
    const count = list.length;
    list = list.slice(start, Math.min(end, start + pageSize));
    const d: Row = { results: list.map((row) => selected(shape(row, expand))) };
    if (query.$inlinecount === 'allpages') d.__count = String(count);
    if (start + pageSize < end) {
      const kept = search
        .replace(/^\?/, '')
        .split('&')
        .filter((part) => part && !part.startsWith('$skiptoken='));
      d.__next = `${origin}${PREFIX}${service}/${set}?${[...kept, `$skiptoken=${start + pageSize}`].join('&')}`;
    }
    return { status: 200, body: { d } };
  }

  function createReturn(body: Row, shape: (row: Row, expand: string[]) => Row): { status: number; body: unknown } {
    const returns = store.get(SETS.returns)!;
    const external = String(body.PurchaseOrderByCustomer ?? '');
    if (!external || !body.SoldToParty) throw new ODataError(400, 'V1/320', 'Sold-to party and customer reference are required');
    const now = new Date();
    const number = `RMA-${String(900000 + returns.length + 1)}`;
    const lines = ((body.to_Item as { results?: Row[] } | undefined)?.results ?? []).map((item) => ({ ...item, CustomerReturn: number }));
    if (!lines.length) throw new ODataError(400, 'V1/555', 'A customer return needs at least one item');
    const row: Row = {
      CustomerReturn: number,
      CustomerReturnType: body.CustomerReturnType ?? 'CBAR',
      SoldToParty: body.SoldToParty,
      PurchaseOrderByCustomer: external,
      TransactionCurrency: body.TransactionCurrency ?? companyCurrency,
      SDDocumentReason: body.SDDocumentReason ?? '',
      CreationDate: d(now.toISOString()),
      CreationTime: timeOf(now),
      OverallSDProcessStatus: 'A',
      YY1_SupportCase_SDH: body.YY1_SupportCase_SDH ?? '',
      YY1_ReturnResolution_SDH: body.YY1_ReturnResolution_SDH ?? '',
      to_Item: lines,
    };
    returns.push(row);
    store.get(SETS.returnItems)!.push(...lines);
    return { status: 201, body: { d: shape(row, ['to_Item']) } };
  }

  const results = (value: unknown): Row[] => (value as { results?: Row[] } | undefined)?.results ?? [];

  function createOrder(body: Row, shape: (row: Row, expand: string[]) => Row): { status: number; body: unknown } {
    const orders = store.get(SETS.orders)!;
    const customer = store.get(SETS.customers)!.find((row) => row.Customer === body.SoldToParty);
    if (!customer) throw new ODataError(400, 'V1/312', `Sold-to party ${String(body.SoldToParty)} is not defined`);
    const items = results(body.to_Item);
    if (!items.length) throw new ODataError(400, 'V1/555', 'A sales order needs at least one item');
    // The next number of the series, never one reused (as the embedded ERP numbers them).
    const used = orders.map((row) => String(row.SalesOrder)).filter((number) => /^SO-2\d{5}$/.test(number));
    const number = `SO-${Math.max(200000, ...used.map((n) => Number(n.slice(3)))) + 1}`;
    const currency = String(body.TransactionCurrency ?? companyCurrency);
    let total = 0;
    const lines = items.map((item) => {
      const amount = Math.round(Number(item.NetPriceAmount ?? 0) * 100) * Number(item.RequestedQuantity ?? 0);
      total += amount;
      return {
        SalesOrder: number,
        SalesOrderItem: String(item.SalesOrderItem),
        Material: item.Material ?? '',
        SalesOrderItemText: item.SalesOrderItemText ?? '',
        RequestedQuantity: qty(item.RequestedQuantity),
        NetPriceAmount: dec(item.NetPriceAmount),
        NetAmount: dec(amount / 100),
        TransactionCurrency: currency,
        to_ScheduleLine: [
          {
            SalesOrder: number,
            SalesOrderItem: String(item.SalesOrderItem),
            ScheduleLine: '1',
            ConfirmedDeliveryDate: null,
            DeliveredQtyInOrderQtyUnit: qty(0),
          },
        ],
      } as Row;
    });
    const row: Row = {
      SalesOrder: number,
      SalesOrderType: body.SalesOrderType ?? 'OR',
      SalesOrderDate: d(new Date().toISOString()),
      SoldToParty: body.SoldToParty,
      PurchaseOrderByCustomer: body.PurchaseOrderByCustomer ?? '',
      RequestedDeliveryDate: body.RequestedDeliveryDate ?? null,
      TransactionCurrency: currency,
      TotalNetAmount: dec(total / 100),
      YY1_TotalGrossAmount_SDH: dec(total / 100),
      OverallDeliveryStatus: 'A',
      YY1_ReleaseStatus_SDH: body.YY1_ReleaseStatus_SDH ?? 'Open',
      to_Item: lines,
    };
    orders.push(row);
    store.get(SETS.orderItems)!.push(...lines);
    return { status: 201, body: { d: shape(row, ['to_Item', 'to_Item/to_ScheduleLine']) } };
  }

  function createPartner(body: Row, shape: (row: Row, expand: string[]) => Row): { status: number; body: unknown } {
    const partners = store.get(SETS.partners)!;
    const given = body.to_Customer as Row | undefined;
    if (!given || !body.OrganizationBPName1) throw new ODataError(400, 'R11/401', 'A name and the customer role are required');
    const used = partners.map((row) => String(row.BusinessPartner)).filter((number) => /^C\d+$/.test(number));
    const number = `C${Math.max(10000, ...used.map((n) => Number(n.slice(1)))) + 1}`;
    const area = results(given.to_CustomerSalesArea)[0] ?? {};
    const address = results(body.to_BusinessPartnerAddress)[0] ?? {};
    const customer: Row = {
      Customer: number,
      CustomerName: given.CustomerName ?? body.OrganizationBPName1,
      VATRegistration: given.VATRegistration ?? '',
      OrderIsBlockedForCustomer: '',
      DeliveryIsBlocked: '',
      BillingIsBlockedForCustomer: '',
      YY1_CreditLimit_cus: dec(0),
      YY1_BalanceDue_cus: dec(0),
      YY1_TaxArea_cus: given.YY1_TaxArea_cus ?? '',
      YY1_PaymentTermsName_cus: termNames.get(String(area.CustomerPaymentTerms ?? '')) ?? '',
      YY1_CRMReference_cus: given.YY1_CRMReference_cus ?? '',
      to_CustomerSalesArea: [
        {
          Customer: number,
          SalesOrganization: area.SalesOrganization ?? '1710',
          DistributionChannel: area.DistributionChannel ?? '10',
          Division: area.Division ?? '00',
          Currency: area.Currency ?? companyCurrency,
          CustomerPaymentTerms: area.CustomerPaymentTerms ?? '',
        },
      ],
    };
    const partner: Row = {
      BusinessPartner: number,
      BusinessPartnerUUID: randomUUID(),
      BusinessPartnerCategory: body.BusinessPartnerCategory ?? '2',
      BusinessPartnerFullName: body.OrganizationBPName1,
      to_Customer: customer,
    };
    store.get(SETS.customers)!.push(customer);
    store.get(SETS.addresses)!.push({
      BusinessPartner: number,
      AddressID: '1',
      StreetName: address.StreetName ?? '',
      CityName: address.CityName ?? '',
      Region: address.Region ?? '',
      Country: address.Country ?? '',
      PostalCode: address.PostalCode ?? '',
    });
    partners.push(partner);
    return { status: 201, body: { d: shape(partner, ['to_Customer', 'to_Customer/to_CustomerSalesArea']) } };
  }

  /** A `$batch`: GETs answered one by one, each changeset all or nothing. */
  function batch(
    service: string,
    text: string,
    boundary: string,
    innerFault: Extract<Fault, { kind: 'innerError' }> | null,
  ): { body: { boundary: string; text: string }; operations: string[]; committed: boolean } {
    const outer = `batchresponse_${randomUUID()}`;
    const operations: string[] = [];
    const out: string[] = [];
    let committed = false;
    let first = true;
    const httpPart = (status: number, body: unknown, extra: string[] = []) =>
      [
        'Content-Type: application/http',
        'Content-Transfer-Encoding: binary',
        ...extra,
        '',
        `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`,
        'Content-Type: application/json',
        '',
        body === null ? '' : JSON.stringify(body),
      ].join('\r\n');
    const run = (requestText: string): { status: number; body: unknown } => {
      const [head = '', ...rest] = requestText.replace(/^[\s\S]*?\r?\n\r?\n/, '').split(/\r?\n\r?\n/);
      const [line = ''] = head.split(/\r?\n/);
      const [method = 'GET', target = ''] = line.split(' ');
      operations.push(`${method} ${decodeURIComponent(target)}`);
      if (first && innerFault) {
        first = false;
        return {
          status: innerFault.status,
          body: { error: { code: innerFault.code, message: { lang: 'en', value: innerFault.message } } },
        };
      }
      first = false;
      const at = target.indexOf('?');
      try {
        const result = operate(
          service,
          method,
          at < 0 ? target : target.slice(0, at),
          at < 0 ? '' : target.slice(at),
          rest.join('\n\n').trim(),
          null,
        );
        return { status: result.status, body: result.body };
      } catch (error) {
        if (!(error instanceof ODataError)) throw error;
        return { status: error.status, body: { error: { code: error.code, message: { lang: 'en', value: error.message } } } };
      }
    };
    for (const part of text.split(`--${boundary}`).slice(1)) {
      if (part.startsWith('--')) break;
      const changeset = /boundary=([^\s;]+)/.exec(part.split(/\r?\n\r?\n/)[0] ?? '')?.[1];
      if (!changeset) {
        const result = run(part);
        out.push(`--${outer}`, httpPart(result.status, result.body));
        continue;
      }
      // All of a changeset or nothing: the store is restored when one of its operations fails.
      const saved = new Map([...store].map(([key, rows]) => [key, [...rows]]));
      const results: { status: number; body: unknown }[] = [];
      let failed: { status: number; body: unknown } | null = null;
      for (const inner of part.split(`--${changeset}`).slice(1)) {
        if (inner.startsWith('--')) break;
        const result = run(inner);
        results.push(result);
        if (result.status >= 400) {
          failed = result;
          break;
        }
      }
      if (failed) {
        for (const [key, rows] of saved) store.set(key, rows);
        out.push(`--${outer}`, httpPart(failed.status, failed.body));
      } else {
        committed = true;
        const cs = `changesetresponse_${randomUUID()}`;
        out.push(`--${outer}`, `Content-Type: multipart/mixed; boundary=${cs}`, '');
        results.forEach((result) => out.push(`--${cs}`, httpPart(result.status, result.body)));
        out.push(`--${cs}--`);
      }
    }
    out.push(`--${outer}--`, '');
    return { body: { boundary: outer, text: out.join('\r\n') }, operations, committed };
  }

  return {
    baseUrl: origin,
    tokenUrl: `${origin}/oauth/token`,
    clientId,
    clientSecret,
    companyCurrency,
    requests,
    faults,
    salesOrders: (externalDocumentNumber) =>
      store
        .get(SETS.orders)!
        .filter((row) => externalDocumentNumber === undefined || row.PurchaseOrderByCustomer === externalDocumentNumber),
    customerReturns: (externalDocumentNumber) =>
      store
        .get(SETS.returns)!
        .filter((row) => externalDocumentNumber === undefined || row.PurchaseOrderByCustomer === externalDocumentNumber),
    customer: (number) => store.get(SETS.customers)!.find((row) => row.Customer === number),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
