import { openDatabase, type Database } from '../../../../platform/sqlite.ts';
import type { ErpChangedRecord, ErpChangeKind } from '../connectors/types.ts';
import { knownOf, type KnownRecord } from './events.ts';

/** A record not seen for this long is forgotten: its deletion, should it come, is then not told. */
const FORGET_AFTER_MS = 400 * 24 * 3_600_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS poll_cursors (
  kind       TEXT PRIMARY KEY,  -- customer | order | shipment | invoice
  after      TEXT NOT NULL,     -- the latest lastModifiedDateTime published (ISO)
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS known_records (
  erp_id          TEXT PRIMARY KEY,  -- the systemId, lower-cased
  kind            TEXT NOT NULL,
  number          TEXT NOT NULL,
  customer_number TEXT,
  order_number    TEXT,
  seen_at         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS known_records_seen_at ON known_records (seen_at);`;

/**
 * What the Business Central feed keeps between runs, in a small SQLite file of its own
 * (`DATA_DIR/erp-feed.sqlite`): how far the poller has published each kind of record, and the
 * canonical keys of the records it has read. A notification of a deletion names only the
 * record's systemId; what was remembered of it names the order, shipment or invoice deleted.
 */
export interface ErpFeedState {
  /** The latest modification time published of a kind (ISO), or null before the first poll. */
  cursor(kind: ErpChangeKind): string | null;
  setCursor(kind: ErpChangeKind, after: string): void;
  remember(records: readonly ErpChangedRecord[]): void;
  known(erpId: string): KnownRecord | null;
  close(): void;
}

export function openErpFeedState(file: string): ErpFeedState {
  const db: Database = openDatabase(file);
  db.exec(SCHEMA);
  db.prepare('DELETE FROM known_records WHERE seen_at < ?').run(Date.now() - FORGET_AFTER_MS);
  const cursorOf = db.prepare<[string], { after: string }>('SELECT after FROM poll_cursors WHERE kind = ?');
  const setCursor = db.prepare(
    'INSERT INTO poll_cursors (kind, after, updated_at) VALUES (?, ?, ?) ON CONFLICT (kind) DO UPDATE SET after = excluded.after, updated_at = excluded.updated_at',
  );
  const upsert = db.prepare(
    `INSERT INTO known_records (erp_id, kind, number, customer_number, order_number, seen_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (erp_id) DO UPDATE SET kind = excluded.kind, number = excluded.number, customer_number = excluded.customer_number,
       order_number = excluded.order_number, seen_at = excluded.seen_at`,
  );
  const knownOne = db.prepare<
    [string],
    { kind: ErpChangeKind; number: string; customer_number: string | null; order_number: string | null }
  >('SELECT kind, number, customer_number, order_number FROM known_records WHERE erp_id = ?');
  const rememberAll = db.transaction((records: readonly ErpChangedRecord[], at: number) => {
    for (const changed of records) {
      const known = knownOf(changed);
      upsert.run(changed.erpId.toLowerCase(), known.kind, known.number, known.customerId, known.orderNumber, at);
    }
  });
  return {
    cursor: (kind) => cursorOf.get(kind)?.after ?? null,
    setCursor: (kind, after) => void setCursor.run(kind, after, Date.now()),
    remember: (records) => void rememberAll(records, Date.now()),
    known(erpId) {
      const row = knownOne.get(erpId.toLowerCase());
      return row ? { kind: row.kind, number: row.number, customerId: row.customer_number, orderNumber: row.order_number } : null;
    },
    close: () => db.close(),
  };
}
