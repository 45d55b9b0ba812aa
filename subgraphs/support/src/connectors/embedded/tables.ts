import type { Database } from 'better-sqlite3';
import type { WatchedTable } from '../../../../../platform/events/sqlite-change-log.ts';
import type { ExpectedSchema } from '../../../../../platform/sqlite.ts';

/**
 * The embedded support desk: tables shaped like Zendesk Support resources (snake_case fields,
 * integer ids). A ticket's custom field values (order number, serial number) are kept one row
 * per field, as Zendesk's `custom_fields: [{id, value}]`; SLA policies keep their metrics as
 * Zendesk's `policy_metrics` JSON.
 */
export const SUPPORT_TABLES = /* SQL */ `
CREATE TABLE IF NOT EXISTS organizations (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  external_id TEXT UNIQUE,
  domain_names TEXT NOT NULL DEFAULT '[]',
  tags TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT,
  role TEXT NOT NULL,               -- end-user | agent | admin
  organization_id INTEGER REFERENCES organizations(id),
  external_id TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_external_id ON users(external_id);
CREATE TABLE IF NOT EXISTS tickets (
  id INTEGER PRIMARY KEY,
  external_id TEXT,
  type TEXT,                        -- question | incident | problem | task
  subject TEXT NOT NULL,
  description TEXT,
  priority TEXT NOT NULL,           -- low | normal | high | urgent
  status TEXT NOT NULL,             -- new | open | pending | hold | solved | closed
  requester_id INTEGER REFERENCES users(id),
  submitter_id INTEGER REFERENCES users(id),
  assignee_id INTEGER REFERENCES users(id),
  organization_id INTEGER REFERENCES organizations(id),
  group_id INTEGER,
  tags TEXT NOT NULL DEFAULT '[]',
  due_at TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_status ON tickets(status, id);
CREATE INDEX IF NOT EXISTS tickets_organization ON tickets(organization_id, id);
CREATE INDEX IF NOT EXISTS tickets_assignee ON tickets(assignee_id, id);
CREATE INDEX IF NOT EXISTS tickets_requester ON tickets(requester_id, id);
CREATE TABLE IF NOT EXISTS ticket_custom_fields (
  ticket_id INTEGER NOT NULL REFERENCES tickets(id),
  field_id INTEGER NOT NULL,
  value TEXT,
  PRIMARY KEY (ticket_id, field_id)
);
CREATE INDEX IF NOT EXISTS ticket_custom_fields_value ON ticket_custom_fields(field_id, value);
CREATE TABLE IF NOT EXISTS ticket_comments (
  id INTEGER PRIMARY KEY,
  ticket_id INTEGER NOT NULL REFERENCES tickets(id),
  author_id INTEGER REFERENCES users(id),
  body TEXT NOT NULL,
  public INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_comments_ticket ON ticket_comments(ticket_id, created_at);
CREATE TABLE IF NOT EXISTS applied_updates (  -- which idempotency keys already changed a ticket
  key TEXT PRIMARY KEY,
  ticket_id INTEGER NOT NULL,
  applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS custom_object_records (  -- Zendesk custom objects: the installed base
  id TEXT PRIMARY KEY,
  custom_object_key TEXT NOT NULL,  -- installed_product
  external_id TEXT NOT NULL,        -- <order number>:<sku>
  name TEXT NOT NULL,
  organization_id INTEGER REFERENCES organizations(id),
  custom_object_fields TEXT NOT NULL,  -- JSON {order_number, sku, quantity, warranty_months}
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (custom_object_key, external_id)
);
CREATE INDEX IF NOT EXISTS custom_object_records_organization ON custom_object_records(organization_id, created_at);
CREATE TABLE IF NOT EXISTS sla_policies (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT,
  position INTEGER NOT NULL,
  filter_tag TEXT NOT NULL,         -- organizations tagged with it get this policy
  policy_metrics TEXT NOT NULL      -- JSON [{priority, metric, target, business_hours}]
);
`;

/** Zendesk custom field ids the embedded desk uses for the order and serial number. */
export const EMBEDDED_FIELD_IDS = { orderNumber: 360000000101, serialNumber: 360000000102 } as const;

/**
 * What a support database must hold to be served: the tables every seeded database has (the
 * migration adds the others) and rows in organizations.
 */
export const SUPPORT_SCHEMA: ExpectedSchema = { tables: ['organizations', 'users', 'tickets', 'ticket_comments'], rowsIn: 'organizations' };

/** Creates the tables when missing; safe to run on every start. */
export function migrateSupport(db: Database): void {
  db.exec(SUPPORT_TABLES);
}

/**
 * The tables whose changes the embedded desk logs for its change feed (feed/embedded.ts), each
 * with the columns its events are built from when the row is gone (a deleted ticket's last
 * status and priority) or was changed again since, and those an update's previous values are
 * compared by (a priority raised to urgent, a ticket or record moved to another organization,
 * an organization's customer number changed). The log itself, its triggers and its cursor are
 * platform/events/sqlite-change-log.ts's, installed by the adapter when it opens the database.
 */
export const SUPPORT_CHANGE_TABLES: readonly WatchedTable[] = [
  { table: 'tickets', columns: ['id', 'status', 'priority', 'organization_id', 'updated_at'] },
  { table: 'ticket_comments', columns: ['ticket_id'] },
  { table: 'ticket_custom_fields', columns: ['ticket_id', 'field_id'] },
  { table: 'organizations', columns: ['id', 'external_id'] },
  { table: 'custom_object_records', columns: ['organization_id', 'custom_object_key'] },
];
