import type { Database } from 'better-sqlite3';
import pg from 'pg';

/** A value bound to a statement. */
export type SqlParam = string | number | null;

/**
 * The few things the workflow store asks of a database, the same for the embedded default
 * (SQLite) and production (PostgreSQL): statements are written once, with `?` placeholders, in
 * the SQL both dialects share (RETURNING, ON CONFLICT … DO NOTHING).
 */
export interface SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  query<R>(sql: string, params?: readonly SqlParam[]): Promise<R[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly SqlParam[]): Promise<number>;
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * SQLite through better-sqlite3. Its calls are synchronous, but a transaction spans awaits, so
 * every use of the connection is queued: a statement of one task never lands inside another
 * task's open transaction. BEGIN IMMEDIATE takes the write lock up front, which also orders
 * several processes on one file (WAL).
 */
export function sqliteExecutor(db: Database): SqlExecutor {
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T> | T): Promise<T> => {
    const result = queue.then(work, work);
    queue = result.catch(() => undefined);
    return result;
  };
  const direct = (): SqlExecutor => ({
    dialect: 'sqlite',
    async query<R>(sql: string, params: readonly SqlParam[] = []) {
      return db.prepare(sql).all(...params) as R[];
    },
    async run(sql: string, params: readonly SqlParam[] = []) {
      return db.prepare(sql).run(...params).changes;
    },
    transaction: (work) => work(direct()),
    close: async () => undefined,
  });
  const inner = direct();
  return {
    dialect: 'sqlite',
    query: (sql, params) => exclusive(() => inner.query(sql, params)),
    run: (sql, params) => exclusive(() => inner.run(sql, params)),
    transaction: (work) =>
      exclusive(async () => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const result = await work(inner);
          db.exec('COMMIT');
          return result;
        } catch (error) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw error;
        }
      }),
    close: () =>
      exclusive(() => {
        db.close();
      }),
  };
}

/** `?` placeholders as PostgreSQL's `$1, $2, …` (the store's statements hold no literal `?`). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** BIGINT columns (times in ms) come back as numbers, as they do from SQLite. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

/** PostgreSQL through a pool of `pg` connections. */
export function postgresExecutor(options: { url: string; max?: number; applicationName?: string }): SqlExecutor & { pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'concord-processes',
    types,
  });
  // An idle connection the server dropped is replaced on next use; it must not crash the process.
  pool.on('error', () => undefined);
  const on = (client: pg.Pool | pg.PoolClient): Omit<SqlExecutor, 'transaction' | 'close'> => ({
    dialect: 'postgres',
    async query<R>(sql: string, params: readonly SqlParam[] = []) {
      return (await client.query(numbered(sql), params as SqlParam[])).rows as R[];
    },
    async run(sql: string, params: readonly SqlParam[] = []) {
      return (await client.query(numbered(sql), params as SqlParam[])).rowCount ?? 0;
    },
  });
  return {
    ...on(pool),
    pool,
    async transaction(work) {
      const client = await pool.connect();
      const tx: SqlExecutor = {
        ...on(client),
        transaction: (nested) => nested(tx),
        close: async () => undefined,
      };
      // A connection whose rollback failed is broken: it is dropped, not handed to the next user.
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await work(tx);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw error;
      } finally {
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
