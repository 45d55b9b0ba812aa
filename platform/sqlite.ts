import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
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
  if (path !== ':memory:') {
    const { dev, ino } = statSync(path);
    openedFiles.set(db, { path, dev, ino });
  }
  if (!options.readonly) db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

// The file each database was opened from, so a probe can tell that it was deleted or replaced.
const openedFiles = new WeakMap<Database.Database, { path: string; dev: number; ino: number }>();

/** What an embedded system's database must hold before a service serves it. */
export interface ExpectedSchema {
  /** Tables the seed writes; a database without one of them is not this system's. */
  readonly tables: readonly string[];
  /** A table that holds at least one row in any seeded database. */
  readonly rowsIn: string;
}

/**
 * Why `db` cannot serve as the system `expected` describes, or null when it can: not a SQLite
 * database (or a damaged one), tables missing, or no rows.
 */
export function problemWithDatabase(db: Database.Database, expected: ExpectedSchema): string | null {
  let tables: Set<string>;
  try {
    tables = new Set(
      db
        .prepare<[], { name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table'`)
        .all()
        .map((row) => row.name),
    );
  } catch (error) {
    return `is not a readable SQLite database (${(error as Error).message})`;
  }
  const missing = expected.tables.filter((table) => !tables.has(table));
  if (missing.length === expected.tables.length) return "holds none of this system's tables";
  if (missing.length > 0) return `lacks the tables ${missing.join(', ')}`;
  try {
    if (!db.prepare(`SELECT 1 FROM "${expected.rowsIn}" LIMIT 1`).get()) return `holds no rows in ${expected.rowsIn}`;
  } catch (error) {
    return `cannot be read (${(error as Error).message})`;
  }
  return null;
}

/**
 * Throws (as an outage: SQLITE_CANTOPEN, SQLITE_NOTADB) when the database's file is gone,
 * replaced or no longer starts like a SQLite file, then reads one row of `table`. SQLite
 * answers from its page cache and from the unlinked file, so a query alone would not notice.
 */
export function probeDatabase(db: Database.Database, table: string): void {
  const opened = openedFiles.get(db);
  if (opened) {
    let now;
    try {
      now = statSync(opened.path);
    } catch {
      throw outage('SQLITE_CANTOPEN', `${opened.path} is gone`);
    }
    if (now.dev !== opened.dev || now.ino !== opened.ino) throw outage('SQLITE_CANTOPEN', `${opened.path} was replaced`);
    if (!startsLikeSqlite(opened.path)) throw outage('SQLITE_NOTADB', `${opened.path} is no longer a SQLite database`);
  }
  db.prepare(`SELECT 1 FROM "${table}" LIMIT 1`).get();
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

function startsLikeSqlite(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(SQLITE_HEADER.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_HEADER);
  } finally {
    closeSync(fd);
  }
}

function outage(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
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
