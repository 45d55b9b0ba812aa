import type { Database } from 'better-sqlite3';
import type { Logger } from '../logger.ts';
import type { EventBroker } from './broker.ts';
import type { CanonicalEvent, EventDraft } from './cloudevent.ts';
import { InvalidEventError } from './schemas.ts';
import type { ChangeFeed } from './source.ts';
import { sourceEvent } from './source.ts';

/**
 * The change feed of an embedded system (a SQLite database): triggers on the system's tables
 * write every insert, update and delete to a change log in the same database, whoever makes it
 * (the adapter, the seed tool, a test, an operator with the sqlite3 shell), and a poller reads
 * the log after a durable cursor, turns the changes into canonical events, publishes them and
 * only then moves the cursor. The module knows no system: a system names its tables and the
 * columns its events are built from, and turns logged changes into event drafts.
 *
 * Delivery is at least once and ordered: a broker that refuses a batch gets the same batch at the
 * next poll (each event's id comes from its type, subject and change number, so a batch sent
 * twice is stored once), and the log behind the cursor is pruned.
 */

/** The log table, in the system's own database. */
export const CHANGE_LOG_TABLE = 'concord_change_log';
/** Where each reader of the log keeps how far it has published. */
export const CHANGE_CURSOR_TABLE = 'concord_change_cursor';

/** A table whose changes are logged. */
export interface WatchedTable {
  /** The table, as SQLite names it. */
  readonly table: string;
  /**
   * The columns the log keeps of each changed row: of the row as written for an insert or an
   * update, as it was for a delete. What an event is built from when the row itself is gone, or
   * has changed again since.
   */
  readonly columns: readonly string[];
}

export type ChangeOperation = 'INSERT' | 'UPDATE' | 'DELETE';

/** One change as the log holds it. */
export interface LoggedChange {
  /** The change's number: increasing, never reused, the version of the events it causes. */
  readonly seq: number;
  readonly table: string;
  readonly operation: ChangeOperation;
  /** The watched columns of the row after an insert or update, before a delete. */
  readonly row: Readonly<Record<string, unknown>>;
  /** The watched columns before an update; null for an insert or a delete. */
  readonly previous: Readonly<Record<string, unknown>> | null;
  /** The columns an update changed (any of the table's, not only the watched ones); empty otherwise. */
  readonly changed: readonly string[];
  /** When the change was written, in ms since the epoch, by the writer's clock. */
  readonly at: number;
}

/** An event a change causes: its version is the change's number, its time the change's. */
export interface ChangeDraft<D = unknown> extends EventDraft<D> {
  readonly change: LoggedChange;
}

const COLUMN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A SQLite identifier, quoted. Names come from code, but the quotes keep `User` and the like valid. */
const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
/** A SQL string literal. */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * The writer's clock in ms, with functions every SQLite build has (unixepoch('subsec') needs
 * 3.42), so an older sqlite3 shell writing to the file still logs its changes.
 */
const NOW_MS = `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;

const LOG_SCHEMA = `
CREATE TABLE IF NOT EXISTS ${CHANGE_LOG_TABLE} (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  table_name TEXT    NOT NULL,
  operation  TEXT    NOT NULL,  -- INSERT | UPDATE | DELETE
  row        TEXT    NOT NULL,  -- JSON: the watched columns (of the old row for a delete)
  previous   TEXT,              -- JSON: the watched columns before an update
  changed    TEXT,              -- JSON array: the columns an update changed
  changed_at INTEGER NOT NULL   -- ms since the epoch
);
CREATE TABLE IF NOT EXISTS ${CHANGE_CURSOR_TABLE} (
  name       TEXT    PRIMARY KEY,
  seq        INTEGER NOT NULL,  -- the last change published
  updated_at INTEGER NOT NULL
);`;

function columnsOf(db: Database, table: string): string[] {
  return db
    .prepare<[string], { name: string }>('SELECT name FROM pragma_table_info(?)')
    .all(table)
    .map((column) => column.name);
}

/** The triggers that log a table's changes, by name, as their CREATE statements. */
function triggersOf(db: Database, watched: WatchedTable): Map<string, string> {
  const all = columnsOf(db, watched.table);
  if (all.length === 0) throw new Error(`change log: there is no table ${watched.table} to watch`);
  for (const column of [...watched.columns, ...all]) {
    if (!COLUMN.test(column)) throw new Error(`change log: column ${watched.table}.${column} is not a plain name`);
  }
  const missing = watched.columns.filter((column) => !all.includes(column));
  if (missing.length) throw new Error(`change log: ${watched.table} has no column ${missing.join(', ')}`);
  const row = (version: 'NEW' | 'OLD') =>
    `json_object(${watched.columns.map((column) => `${literal(column)}, ${version}.${ident(column)}`).join(', ')})`;
  // Every column is compared, so an update that changes nothing (the same values written again) logs nothing.
  const differs = all.map((column) => `OLD.${ident(column)} IS NOT NEW.${ident(column)}`).join(' OR ');
  const changed = `(SELECT json_group_array(value) FROM json_each(json_array(${all
    .map((column) => `CASE WHEN OLD.${ident(column)} IS NOT NEW.${ident(column)} THEN ${literal(column)} END`)
    .join(', ')})) WHERE type <> 'null')`;
  const name = (operation: string) => `${CHANGE_LOG_TABLE}_${watched.table.replace(/\W/g, '_')}_${operation}`;
  const table = ident(watched.table);
  const log = `INSERT INTO ${CHANGE_LOG_TABLE} (table_name, operation, row, previous, changed, changed_at)`;
  return new Map([
    [
      name('insert'),
      `CREATE TRIGGER ${ident(name('insert'))} AFTER INSERT ON ${table} BEGIN ${log} VALUES (${literal(watched.table)}, 'INSERT', ${row('NEW')}, NULL, NULL, ${NOW_MS}); END`,
    ],
    [
      name('update'),
      `CREATE TRIGGER ${ident(name('update'))} AFTER UPDATE ON ${table} WHEN ${differs} BEGIN ${log} VALUES (${literal(watched.table)}, 'UPDATE', ${row('NEW')}, ${row('OLD')}, ${changed}, ${NOW_MS}); END`,
    ],
    [
      name('delete'),
      `CREATE TRIGGER ${ident(name('delete'))} AFTER DELETE ON ${table} BEGIN ${log} VALUES (${literal(watched.table)}, 'DELETE', ${row('OLD')}, NULL, NULL, ${NOW_MS}); END`,
    ],
  ]);
}

/**
 * Creates the change log (when missing) and the triggers that fill it, in one transaction; safe
 * on every open. A trigger whose definition differs from what the tables now need (a column added
 * by a migration, a watched column added) is made again. A new log numbers its changes from the
 * current time in ms, so a database made anew (a fresh seed) never gives a change the number of
 * one in the database it replaced, whose events the broker may still hold under the same ids.
 */
export function installChangeLog(db: Database, tables: readonly WatchedTable[]): void {
  db.transaction(() => {
    const existed = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(CHANGE_LOG_TABLE);
    db.exec(LOG_SCHEMA);
    if (!existed) db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(CHANGE_LOG_TABLE, Date.now());
    const current = db.prepare<[string], { sql: string }>(`SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?`);
    for (const watched of tables) {
      for (const [name, sql] of triggersOf(db, watched)) {
        if (current.get(name)?.sql === sql) continue;
        db.exec(`DROP TRIGGER IF EXISTS ${ident(name)}`);
        db.exec(sql);
      }
    }
  }).immediate();
}

interface LogRow {
  seq: number;
  table_name: string;
  operation: ChangeOperation;
  row: string;
  previous: string | null;
  changed: string | null;
  changed_at: number;
}

function toChange(row: LogRow): LoggedChange {
  return {
    seq: row.seq,
    table: row.table_name,
    operation: row.operation,
    row: JSON.parse(row.row) as Record<string, unknown>,
    previous: row.previous === null ? null : (JSON.parse(row.previous) as Record<string, unknown>),
    changed: row.changed === null ? [] : (JSON.parse(row.changed) as string[]),
    at: row.changed_at,
  };
}

/**
 * The drafts of one poll, one per type and subject: a record changed several times between two
 * polls (an order and its lines written in one transaction) is told once, by its last change,
 * with every `changes` entry of the earlier ones kept.
 */
export function coalesceDrafts(drafts: readonly ChangeDraft[]): ChangeDraft[] {
  const last = new Map<string, ChangeDraft>();
  for (const draft of [...drafts].sort((a, b) => a.change.seq - b.change.seq)) {
    const key = `${draft.type}\u0000${draft.subject}`;
    const earlier = last.get(key);
    // Taken out and put back, so the map stays in the order of each subject's last change.
    last.delete(key);
    last.set(key, earlier ? withEarlierChanges(draft, earlier) : draft);
  }
  return [...last.values()];
}

function withEarlierChanges(draft: ChangeDraft, earlier: ChangeDraft): ChangeDraft {
  const before = (earlier.data as { changes?: unknown } | null)?.changes;
  const now = (draft.data as { changes?: unknown } | null)?.changes;
  if (!Array.isArray(before) || !Array.isArray(now)) return draft;
  return { ...draft, data: { ...(draft.data as object), changes: [...new Set([...before, ...now])] } };
}

export interface ChangeLogFeedOptions {
  /** The system's database, with the log installed (installChangeLog). */
  readonly db: Database;
  readonly broker: EventBroker;
  /** The CloudEvents source of what is published (`concord/crm`). */
  readonly source: string;
  readonly logger: Logger;
  /** The changes of one poll, in order, as event drafts (none for a change no event tells). */
  readonly toDrafts: (changes: readonly LoggedChange[]) => readonly ChangeDraft[] | Promise<readonly ChangeDraft[]>;
  /** How often the log is read, in ms (default 100). */
  readonly pollMs?: number;
  /** Changes read per poll, at most (default 500); a full batch is followed by the next at once. */
  readonly batchSize?: number;
  /** The cursor's name: each reader of one log has its own (default `broker`). */
  readonly cursor?: string;
}

/** The running feed: the ChangeFeed a subgraph starts and stops, and one poll on demand. */
export interface ChangeLogFeed extends ChangeFeed {
  /** Reads, publishes and acknowledges one batch; resolves to the number of changes it moved past. */
  pollOnce(): Promise<number>;
}

/**
 * The poller over a change log. The cursor is made at the end of the log the first time (what
 * happened before the feed first ran is not told); after that it is where the last published
 * batch ended, so changes made while the service was down are published when it is back, and
 * nothing published is published again.
 */
export function changeLogFeed(options: ChangeLogFeedOptions): ChangeLogFeed {
  const { db, broker, source, logger } = options;
  const pollMs = options.pollMs ?? 100;
  const batchSize = options.batchSize ?? 500;
  const cursorName = options.cursor ?? 'broker';

  db.prepare(
    `INSERT OR IGNORE INTO ${CHANGE_CURSOR_TABLE} (name, seq, updated_at)
     VALUES (?, COALESCE((SELECT MAX(seq) FROM ${CHANGE_LOG_TABLE}), (SELECT seq FROM sqlite_sequence WHERE name = ?), 0), ?)`,
  ).run(cursorName, CHANGE_LOG_TABLE, Date.now());
  const cursorOf = db.prepare<[string], { seq: number }>(`SELECT seq FROM ${CHANGE_CURSOR_TABLE} WHERE name = ?`);
  const changesAfter = db.prepare<[number, number], LogRow>(
    `SELECT seq, table_name, operation, row, previous, changed, changed_at FROM ${CHANGE_LOG_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?`,
  );
  const moveCursor = db.prepare(`UPDATE ${CHANGE_CURSOR_TABLE} SET seq = MAX(seq, ?), updated_at = ? WHERE name = ?`);
  // Behind the slowest reader only: a second reader of the same log still gets what it has not read.
  const prune = db.prepare(`DELETE FROM ${CHANGE_LOG_TABLE} WHERE seq <= (SELECT MIN(seq) FROM ${CHANGE_CURSOR_TABLE})`);
  const acknowledge = db.transaction((seq: number) => {
    moveCursor.run(seq, Date.now(), cursorName);
    prune.run();
  });

  /** Events of the drafts; a draft its schema refuses is a bug of the feed, logged and left out rather than blocking the log. */
  function eventsOf(drafts: readonly ChangeDraft[]): CanonicalEvent[] {
    const events: CanonicalEvent[] = [];
    for (const { change, ...draft } of coalesceDrafts(drafts)) {
      try {
        events.push(sourceEvent(draft, { source, version: change.seq, at: new Date(change.at) }));
      } catch (error) {
        if (!(error instanceof InvalidEventError)) throw error;
        logger.error({ err: error, table: change.table, seq: change.seq, type: draft.type }, 'change log: an event was left out');
      }
    }
    return events;
  }

  async function pollOnce(): Promise<number> {
    const from = cursorOf.get(cursorName)?.seq ?? 0;
    const rows = changesAfter.all(from, batchSize);
    if (rows.length === 0) return 0;
    const changes = rows.map(toChange);
    const events = eventsOf(await options.toDrafts(changes));
    if (events.length) await broker.publish(events);
    acknowledge(changes[changes.length - 1]!.seq);
    if (events.length) logger.debug({ events: events.length, changes: changes.length }, 'change log: events published');
    return changes.length;
  }

  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let failing = false;

  const loop = () => {
    timer = null;
    running = (async () => {
      try {
        while (!stopped && (await pollOnce()) === batchSize);
        if (failing) logger.info('change log: publishing again');
        failing = false;
      } catch (error) {
        // Logged once per outage: the next polls try again, quietly, until one goes through.
        if (!failing && !stopped) logger.warn({ err: error }, 'change log: events not published; trying again at the next poll');
        failing = true;
      }
    })();
    void running.then(() => {
      running = null;
      if (!stopped) timer = setTimeout(loop, pollMs);
    });
  };

  return {
    pollOnce,
    async start() {
      if (!stopped) return;
      stopped = false;
      timer = setTimeout(loop, 0);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}
