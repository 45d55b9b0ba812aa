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
