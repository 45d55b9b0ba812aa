import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EMBEDDED_DATABASE_FILES, openDatabase, type Database } from '../../platform/sqlite.ts';
import { migrateCrm } from '../../subgraphs/crm/src/connectors/embedded/tables.ts';
import { migrateErp } from '../../subgraphs/erp/src/connectors/embedded/tables.ts';
import { migrateSupport } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import { writeCrm } from './write-crm.ts';
import { writeErp } from './write-erp.ts';
import { writeSupport } from './write-support.ts';
import { dayOf, generateWorld, type SeedOptions, type World } from './world.ts';

export type { SeedOptions } from './world.ts';

export type SystemName = keyof typeof EMBEDDED_DATABASE_FILES;

export interface SeedDatabases {
  crm: Database;
  erp: Database;
  support: Database;
}

export interface SystemSummary {
  /** Rows written per table. */
  tables: Record<string, number>;
  rows: number;
  elapsedMs: number;
}

export interface SeedSummary {
  options: SeedOptions;
  crm: SystemSummary;
  erp: SystemSummary;
  support: SystemSummary;
  /** Time spent building the world in memory, before any write. */
  generateMs: number;
  elapsedMs: number;
}

/** Largest sizes that keep every document number in its format (C + 5 digits, SO- + 6 digits...). */
export const SEED_LIMITS = { customers: 89_999, orders: 250_000, cases: 2_000_000 } as const;

const SYSTEMS: readonly SystemName[] = ['crm', 'erp', 'support'];

/** The demo's default size: 1,000 customers, 10,000 orders, 20,000 cases, seed 42, as of today (UTC). */
export function defaultSeedOptions(asOf?: string): SeedOptions {
  return { customers: 1000, orders: 10_000, cases: 20_000, seed: 42, asOf: asOf ?? new Date().toISOString().slice(0, 10) };
}

/** Throws a RangeError naming the first option that cannot be seeded. */
export function validateSeedOptions(options: SeedOptions): void {
  const whole = (name: keyof typeof SEED_LIMITS, min: number) => {
    const value = options[name];
    if (!Number.isInteger(value) || value < min || value > SEED_LIMITS[name]) {
      throw new RangeError(`${name} must be a whole number from ${min} to ${SEED_LIMITS[name]} (got ${value})`);
    }
  };
  whole('customers', 1);
  whole('orders', 0);
  whole('cases', 0);
  if (!Number.isInteger(options.seed) || options.seed < 0 || options.seed > 0xffffffff) {
    throw new RangeError(`seed must be a whole number from 0 to ${0xffffffff} (got ${options.seed})`);
  }
  try {
    dayOf(options.asOf);
  } catch {
    throw new RangeError(`asOf must be a calendar date as YYYY-MM-DD (got ${JSON.stringify(options.asOf)})`);
  }
}

function writeSystem(
  db: Database,
  migrate: (db: Database) => void,
  write: (db: Database, world: World) => Record<string, number>,
  world: World,
): SystemSummary {
  const started = performance.now();
  migrate(db);
  const tables = db.transaction(() => write(db, world))();
  const rows = Object.values(tables).reduce((sum, n) => sum + n, 0);
  return { tables, rows, elapsedMs: performance.now() - started };
}

/**
 * Fills the three open databases with one consistent demo world: creates the tables when
 * missing, then replaces their rows in one transaction per database.
 */
export function seedDatabases(dbs: SeedDatabases, options: SeedOptions): SeedSummary {
  validateSeedOptions(options);
  const started = performance.now();
  const world = generateWorld(options);
  const generateMs = performance.now() - started;
  const crm = writeSystem(dbs.crm, migrateCrm, writeCrm, world);
  const erp = writeSystem(dbs.erp, migrateErp, writeErp, world);
  const support = writeSystem(dbs.support, migrateSupport, writeSupport, world);
  return { options: { ...options }, crm, erp, support, generateMs, elapsedMs: performance.now() - started };
}

/** Where each system's database lives inside a data folder. */
export function databasePaths(dataDir: string): Record<SystemName, string> {
  const dir = resolve(dataDir);
  return {
    crm: join(dir, EMBEDDED_DATABASE_FILES.crm),
    erp: join(dir, EMBEDDED_DATABASE_FILES.erp),
    support: join(dir, EMBEDDED_DATABASE_FILES.support),
  };
}

function removeWithSidecars(path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
}

function fsyncPath(path: string): void {
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic there.
  }
}

/** A data folder (the three files under their usual names), or each database's own path. */
export type SeedTarget = string | Record<SystemName, string>;

function pathsOf(target: SeedTarget): Record<SystemName, string> {
  return typeof target === 'string' ? databasePaths(target) : target;
}

/**
 * Seeds the three database files, replacing any that exist. Each database is built in a
 * temporary file beside its final name and renamed into place only once complete, so a crash
 * never leaves a half-written database. Not meant to run while a service has them open.
 */
export function seedDataDirectory(target: SeedTarget, options: SeedOptions): SeedSummary {
  validateSeedOptions(options);
  const finals = pathsOf(target);
  for (const system of SYSTEMS) mkdirSync(dirname(finals[system]), { recursive: true });
  const temps = {} as Record<SystemName, string>;
  const open = new Map<SystemName, Database>();
  try {
    for (const system of SYSTEMS) {
      const temp = `${finals[system]}.${process.pid}.tmp`;
      temps[system] = temp;
      removeWithSidecars(temp);
      const db = openDatabase(temp);
      open.set(system, db);
      // The temporary file is thrown away on any failure, so durability mid-build buys nothing.
      db.pragma('journal_mode = MEMORY');
      db.pragma('synchronous = OFF');
    }
    const get = (system: SystemName) => {
      const db = open.get(system);
      if (!db) throw new Error(`${system} database is not open`);
      return db;
    };
    const summary = seedDatabases({ crm: get('crm'), erp: get('erp'), support: get('support') }, options);
    for (const system of SYSTEMS) {
      const db = get(system);
      // A plain rollback-journal file is self-contained; the services switch it to WAL on open.
      db.pragma('journal_mode = DELETE');
      db.close();
      open.delete(system);
      fsyncPath(temps[system]);
    }
    for (const system of SYSTEMS) {
      // A WAL left from the old database would be replayed into the new one: remove it first.
      for (const suffix of ['-wal', '-shm', '-journal']) rmSync(finals[system] + suffix, { force: true });
      renameSync(temps[system], finals[system]);
    }
    for (const folder of new Set(SYSTEMS.map((system) => dirname(finals[system])))) fsyncPath(folder);
    return summary;
  } catch (error) {
    for (const db of open.values()) {
      try {
        db.close();
      } catch {
        // Already failing; the original error is the one worth reporting.
      }
    }
    for (const temp of Object.values(temps)) removeWithSidecars(temp);
    throw error;
  }
}

function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** One line per system with its row counts and time, then the total. */
export function formatSeedSummary(summary: SeedSummary): string[] {
  const lines = SYSTEMS.map((system) => {
    const s = summary[system];
    const tables = Object.entries(s.tables)
      .map(([table, n]) => `${table} ${thousands(n)}`)
      .join(', ');
    return `${system.padEnd(8)}${thousands(s.rows).padStart(8)} rows in ${seconds(s.elapsedMs)}  (${tables})`;
  });
  lines.push(`Done in ${seconds(summary.elapsedMs)} (world built in ${seconds(summary.generateMs)}).`);
  return lines;
}

/**
 * Seeds the default demo world when any of the three databases is missing (all three are
 * rewritten, so they stay consistent). Resolves to true when it seeded.
 */
export async function ensureSeeded(
  target: SeedTarget,
  logger?: { info(msg: string): void },
  options: SeedOptions = defaultSeedOptions(),
): Promise<boolean> {
  const paths = pathsOf(target);
  const missing = SYSTEMS.filter((system) => !existsSync(paths[system]));
  if (missing.length === 0) return false;
  logger?.info(
    `Seeding demo data (missing: ${missing.map((s) => paths[s]).join(', ')}); ` +
      `${options.customers} customers, ${options.orders} orders, ${options.cases} cases as of ${options.asOf}`,
  );
  const summary = seedDataDirectory(paths, options);
  for (const line of formatSeedSummary(summary)) logger?.info(line);
  return true;
}
