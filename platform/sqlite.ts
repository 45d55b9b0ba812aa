import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type { Database } from 'better-sqlite3';

/**
 * Opens an embedded system's SQLite database (`:memory:` for tests), creating its folder.
 * WAL lets the seed tool and a running service share a file; foreign keys are enforced.
 */
export function openDatabase(path: string, options: { readonly?: boolean } = {}): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  if (!options.readonly) db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

/** The file names of the embedded systems' databases inside the data folder. */
export const EMBEDDED_DATABASE_FILES = {
  crm: 'crm.sqlite',
  erp: 'erp.sqlite',
  support: 'support.sqlite',
} as const;

// SQLite result codes that mean the database cannot serve (locked, unreadable, gone), as
// opposed to a statement the adapter got wrong.
const OUTAGE_CODES = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|CORRUPT|NOTADB|READONLY|PERM|AUTH)/;

/** True when an error from better-sqlite3 means the embedded system is unavailable. */
export function isSqliteOutage(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return OUTAGE_CODES.test(code);
  // better-sqlite3 throws a TypeError once the connection is closed.
  return /database connection is not open/.test(error.message);
}
