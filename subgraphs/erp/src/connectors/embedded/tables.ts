import type { Database } from 'better-sqlite3';
import type { WatchedTable } from '../../../../../platform/events/sqlite-change-log.ts';
import type { ExpectedSchema } from '../../../../../platform/sqlite.ts';

/**
 * The embedded ERP: tables shaped like Business Central API v2.0 entities (camelCase fields,
 * GUID ids beside document numbers). Carrier and tracking, serial numbers with warranty, and
 * return orders are not in BC's standard API; as in real deployments they come from a custom
 * API page of the same OData shape, and the columns marked "extension" stand for it.
 */
export const ERP_TABLES = /* SQL */ `
CREATE TABLE IF NOT EXISTS paymentTerms (
  id TEXT PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  displayName TEXT NOT NULL,
  dueDateCalculation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
  id TEXT PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  displayName TEXT NOT NULL,
  email TEXT,
  phoneNumber TEXT,
  addressLine1 TEXT,
  city TEXT,
  state TEXT,
  country TEXT,
  postalCode TEXT,
  currencyCode TEXT NOT NULL,
  paymentTermsId TEXT REFERENCES paymentTerms(id),
  taxRegistrationNumber TEXT,
  creditLimit REAL NOT NULL DEFAULT 0,
  blocked TEXT NOT NULL DEFAULT ' ',
  taxAreaCode TEXT,
  crmReference TEXT UNIQUE,        -- extension: the CRM account the customer was onboarded from
  balanceDue REAL NOT NULL DEFAULT 0,
  lastModifiedDateTime TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  displayName TEXT NOT NULL,
  description TEXT,
  type TEXT NOT NULL DEFAULT 'Inventory',
  itemCategoryCode TEXT,
  unitPrice REAL NOT NULL,
  baseUnitOfMeasureCode TEXT NOT NULL DEFAULT 'PCS',
  itemTrackingCode TEXT,           -- extension: 'SN' for serialized items
  warrantyMonths INTEGER,          -- extension
  inventory REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS salesOrders (
  id TEXT PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  externalDocumentNumber TEXT,
  orderDate TEXT NOT NULL,
  customerId TEXT NOT NULL REFERENCES customers(id),
  customerNumber TEXT NOT NULL,
  customerName TEXT NOT NULL,
  currencyCode TEXT NOT NULL,
  requestedDeliveryDate TEXT,
  totalAmountExcludingTax REAL NOT NULL,
  totalTaxAmount REAL NOT NULL,
  totalAmountIncludingTax REAL NOT NULL,
  fullyShipped INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL,            -- Draft | In Review | Open
  lastModifiedDateTime TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS salesOrders_customerNumber ON salesOrders(customerNumber, orderDate);
CREATE TABLE IF NOT EXISTS salesOrderLines (
  id TEXT PRIMARY KEY,
  documentId TEXT NOT NULL REFERENCES salesOrders(id),
  sequence INTEGER NOT NULL,
  lineType TEXT NOT NULL DEFAULT 'Item',
  lineObjectNumber TEXT,
  description TEXT,
  quantity REAL NOT NULL,
  unitPrice REAL NOT NULL,
  amountExcludingTax REAL NOT NULL,
  shippedQuantity REAL NOT NULL DEFAULT 0,
  shipmentDate TEXT
);
CREATE INDEX IF NOT EXISTS salesOrderLines_documentId ON salesOrderLines(documentId, sequence);
CREATE TABLE IF NOT EXISTS salesShipments (
  id TEXT PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  orderNumber TEXT NOT NULL,
  customerNumber TEXT NOT NULL,
  postingDate TEXT NOT NULL,
  shipmentMethodCode TEXT,
  shippingAgentCode TEXT,          -- extension: carrier
  packageTrackingNumber TEXT,      -- extension
  deliveredDate TEXT,              -- extension
  lastModifiedDateTime TEXT        -- null where no writer set it (the seed sets none): the posting date stands for it
);
CREATE INDEX IF NOT EXISTS salesShipments_orderNumber ON salesShipments(orderNumber);
CREATE TABLE IF NOT EXISTS salesShipmentLines (
  id TEXT PRIMARY KEY,
  documentId TEXT NOT NULL REFERENCES salesShipments(id),
  documentNo TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  lineObjectNumber TEXT NOT NULL,
  description TEXT,
  quantity REAL NOT NULL,
  shipmentDate TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS salesShipmentLines_documentNo ON salesShipmentLines(documentNo, sequence);
CREATE TABLE IF NOT EXISTS serialNumbers (    -- extension
  serialNumber TEXT PRIMARY KEY,
  itemNumber TEXT NOT NULL,
  customerNumber TEXT NOT NULL,
  orderNumber TEXT NOT NULL,
  shipmentNumber TEXT NOT NULL,
  warrantyStartDate TEXT NOT NULL,
  warrantyEndDate TEXT NOT NULL,
  warrantyCode TEXT NOT NULL       -- STD | EXT | PARTS
);
CREATE INDEX IF NOT EXISTS serialNumbers_shipmentNumber ON serialNumbers(shipmentNumber);
CREATE INDEX IF NOT EXISTS serialNumbers_customerNumber ON serialNumbers(customerNumber);
CREATE TABLE IF NOT EXISTS salesInvoices (
  id TEXT PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  invoiceDate TEXT NOT NULL,
  postingDate TEXT NOT NULL,
  dueDate TEXT NOT NULL,
  customerId TEXT NOT NULL REFERENCES customers(id),
  customerNumber TEXT NOT NULL,
  orderId TEXT,
  orderNumber TEXT,
  currencyCode TEXT NOT NULL,
  totalAmountIncludingTax REAL NOT NULL,
  remainingAmount REAL NOT NULL,
  status TEXT NOT NULL,            -- Draft | In Review | Open | Paid | Canceled | Corrective
  closedDate TEXT,                 -- extension: date the invoice was fully paid
  lastModifiedDateTime TEXT        -- null where no writer set it (the seed sets none): the posting date stands for it
);
CREATE INDEX IF NOT EXISTS salesInvoices_customerNumber ON salesInvoices(customerNumber, invoiceDate);
CREATE INDEX IF NOT EXISTS salesInvoices_orderNumber ON salesInvoices(orderNumber);
CREATE TABLE IF NOT EXISTS subscriptionBillingSchedules (  -- extension: subscription billing
  subscriptionId TEXT PRIMARY KEY,
  customerNumber TEXT NOT NULL,
  itemNumber TEXT NOT NULL,
  quantity REAL NOT NULL,
  unitPrice REAL NOT NULL,
  billingPeriod TEXT NOT NULL,     -- Monthly | Annual
  status TEXT NOT NULL,            -- Active | Suspended
  startDate TEXT NOT NULL,
  endDate TEXT,
  nextInvoiceDate TEXT,
  version INTEGER NOT NULL,
  currencyCode TEXT NOT NULL,
  lastModifiedDateTime TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptionBillingSchedules_customer ON subscriptionBillingSchedules(customerNumber);
CREATE TABLE IF NOT EXISTS subscriptionBillingChanges (  -- extension: the change keys applied
  changeKey TEXT PRIMARY KEY,
  subscriptionId TEXT NOT NULL,
  version INTEGER NOT NULL,
  appliedDateTime TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS salesReturnOrders (  -- extension
  id TEXT PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  customerNumber TEXT NOT NULL,
  externalDocumentNumber TEXT NOT NULL UNIQUE,
  returnReasonCode TEXT,
  status TEXT NOT NULL,
  createdDateTime TEXT NOT NULL,
  caseNumber TEXT,                 -- the support case it came from
  resolution TEXT,                 -- REPLACE | REPAIR | REFUND
  currencyCode TEXT
);
CREATE INDEX IF NOT EXISTS salesReturnOrders_caseNumber ON salesReturnOrders(caseNumber);
CREATE TABLE IF NOT EXISTS salesReturnOrderLines (  -- extension
  id TEXT PRIMARY KEY,
  documentId TEXT NOT NULL REFERENCES salesReturnOrders(id),
  sequence INTEGER NOT NULL,
  lineObjectNumber TEXT NOT NULL,
  quantity REAL NOT NULL,
  serialNumber TEXT,
  appliesToInvoiceNumber TEXT,
  orderNumber TEXT,
  orderLineSequence INTEGER,
  unitPrice REAL,
  returnReasonCode TEXT
);
CREATE INDEX IF NOT EXISTS salesReturnOrderLines_documentId ON salesReturnOrderLines(documentId);
CREATE INDEX IF NOT EXISTS salesReturnOrderLines_serialNumber ON salesReturnOrderLines(serialNumber);
CREATE INDEX IF NOT EXISTS salesReturnOrderLines_orderLine ON salesReturnOrderLines(orderNumber, orderLineSequence);
`;

// Columns added after the first release of their tables.
const ADDED_COLUMNS: Record<string, Record<string, string>> = {
  customers: { taxAreaCode: 'TEXT', crmReference: 'TEXT' },
  items: { inventory: 'REAL NOT NULL DEFAULT 0' },
  salesShipments: { lastModifiedDateTime: 'TEXT' },
  salesInvoices: { lastModifiedDateTime: 'TEXT' },
  salesReturnOrders: { caseNumber: 'TEXT', resolution: 'TEXT', currencyCode: 'TEXT' },
  salesReturnOrderLines: { orderLineSequence: 'INTEGER', unitPrice: 'REAL', returnReasonCode: 'TEXT' },
};

/**
 * The tables whose changes the embedded ERP logs for its change feed, each with the columns its
 * events are built from when the row is gone: the keys (an order line names its order by id).
 */
export const ERP_CHANGE_TABLES: readonly WatchedTable[] = [
  { table: 'customers', columns: ['id', 'number'] },
  { table: 'salesOrders', columns: ['id', 'number', 'customerNumber', 'status', 'fullyShipped'] },
  { table: 'salesOrderLines', columns: ['documentId'] },
  { table: 'salesShipments', columns: ['id', 'number', 'orderNumber', 'customerNumber', 'postingDate'] },
  { table: 'salesInvoices', columns: ['id', 'number', 'customerNumber', 'orderNumber', 'status'] },
];

/**
 * What a erp database must hold to be served: the tables every seeded database has (the
 * migration adds the others) and rows in customers.
 */
export const ERP_SCHEMA: ExpectedSchema = {
  tables: ['paymentTerms', 'customers', 'items', 'salesOrders', 'salesOrderLines', 'salesShipments', 'salesInvoices'],
  rowsIn: 'customers',
};

/** Creates the tables when missing and adds columns an older database lacks; safe on every start. */
export function migrateErp(db: Database): void {
  for (const [table, columns] of Object.entries(ADDED_COLUMNS)) {
    const existing = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all();
    if (existing.length === 0) continue;
    for (const [column, type] of Object.entries(columns)) {
      if (!existing.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
    }
  }
  db.exec(ERP_TABLES);
}
