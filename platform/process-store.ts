import type { Database } from 'better-sqlite3';

/**
 * Durable state of Concord's own processes, in a SQLite database of their own: idempotency
 * keys (what a caller's key already produced) and an outbox of follow-on deliveries.
 */
export const PROCESS_TABLES = /* SQL */ `
CREATE TABLE IF NOT EXISTS idempotency_keys (
  scope TEXT NOT NULL,              -- the caller (token subject): keys are the caller's own
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,       -- what was asked with this key the first time
  state TEXT NOT NULL,              -- in_progress | done
  response TEXT,                    -- JSON of the first result, once done
  owner TEXT,                       -- which claim holds the key: only it may complete or release it
  holder TEXT,                      -- which process holds the claim (idempotency_holders)
  lease_until INTEGER NOT NULL,     -- an in_progress key older than this may be taken over
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS idempotency_holders (
  holder TEXT PRIMARY KEY,          -- one running process's store
  pid INTEGER,
  heartbeat_at INTEGER NOT NULL     -- its last sign of life: a silent holder's claims may be taken over
);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dedupe_key TEXT NOT NULL UNIQUE,  -- the same delivery enqueued twice is one entry
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  status TEXT NOT NULL,             -- pending | delivered | dead
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  correlation_id TEXT,
  created_at TEXT NOT NULL,
  delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
`;

export function migrateProcessStore(db: Database): void {
  db.exec(PROCESS_TABLES);
  const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('idempotency_keys')`).all();
  if (!columns.some((column) => column.name === 'owner')) db.exec('ALTER TABLE idempotency_keys ADD COLUMN owner TEXT');
  if (!columns.some((column) => column.name === 'holder')) db.exec('ALTER TABLE idempotency_keys ADD COLUMN holder TEXT');
}
