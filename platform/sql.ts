import type { Database, Statement } from 'better-sqlite3';
import { chunked as chunkedBy } from './chunks.ts';

/**
 * Helpers for embedded adapters that batch keys into SQL `IN (...)` lists. SQLite binds at
 * most 32,766 parameters per statement; chunks stay far below it.
 */
export const SQL_CHUNK = 512;

/** "?, ?, ?" for n parameters. */
export function placeholders(n: number): string {
  return n <= 0 ? '' : '?' + ', ?'.repeat(n - 1);
}

/** Splits keys into chunks of at most `size`, dropping duplicates. */
export function chunked<T>(keys: readonly T[], size = SQL_CHUNK): T[][] {
  return chunkedBy(keys, size);
}

/** A decimal string with two decimals from a number of currency units ("1234.50"). */
export function toDecimal(value: number): string {
  return (Math.round(value * 100) / 100).toFixed(2);
}

export type SqlValue = string | number | bigint | null;

/**
 * Runs "SELECT … IN (list)" statements over any number of keys. Lists are padded to a power of
 * two by repeating a key, so each query shape prepares at most ten statements, which are kept.
 * `sql` receives the placeholder list; `extra` parameters are bound after the keys.
 */
export function createInQuery(db: Database) {
  const statements = new Map<string, Statement<SqlValue[], unknown>>();
  return function selectIn<Row>(sql: (list: string) => string, keys: readonly SqlValue[], extra: readonly SqlValue[] = []): Row[] {
    const rows: Row[] = [];
    for (const chunk of chunked(keys)) {
      let size = 1;
      while (size < chunk.length) size *= 2;
      const text = sql(placeholders(size));
      let statement = statements.get(text);
      if (!statement) {
        statement = db.prepare<SqlValue[], unknown>(text);
        statements.set(text, statement);
      }
      const padded = chunk.concat(Array<SqlValue>(size - chunk.length).fill(chunk[chunk.length - 1] ?? null));
      for (const row of allRows<Row>(statement, [...padded, ...extra])) rows.push(row);
    }
    return rows;
  };
}

const columnNames = new WeakMap<Statement<SqlValue[], unknown>, readonly string[]>();

/**
 * `statement.all(...params)`: every row, as an object keyed by column name in column order.
 * The rows are read as arrays and made into objects here: better-sqlite3 builds each row object
 * property by property through V8's C++ API, which costs more than the query itself for a page
 * of rows with many columns. The statement is switched to raw mode for good, so it must be read
 * through this function only.
 */
export function allRows<Row>(statement: Statement<SqlValue[], unknown>, params: readonly SqlValue[]): Row[] {
  let names = columnNames.get(statement);
  if (!names) {
    names = statement.columns().map((column) => column.name);
    statement.raw(true);
    columnNames.set(statement, names);
  }
  const values = statement.all(...params) as unknown[][];
  const rows = new Array<Row>(values.length);
  for (let r = 0; r < values.length; r++) {
    const value = values[r]!;
    const row: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) row[names[i]!] = value[i];
    rows[r] = row as Row;
  }
  return rows;
}
