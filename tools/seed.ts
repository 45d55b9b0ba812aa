import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { EMBEDDED_DATABASE_FILES } from '../platform/sqlite.ts';
import { configuredEnv } from '../platform/config-file.ts';
import {
  SEED_LIMITS,
  databasePaths,
  defaultSeedOptions,
  formatSeedSummary,
  seedDataDirectory,
  validateSeedOptions,
  type SeedOptions,
} from './seed/index.ts';

const USAGE = `Usage: npm run seed -- [options]

Writes one consistent set of demo data into the CRM, ERP and support desk databases
(${Object.values(EMBEDDED_DATABASE_FILES).join(', ')}).

Options:
  --customers N      customers to create (default 1000, at most ${SEED_LIMITS.customers})
  --orders N         sales orders (default 10 per customer)
  --cases N          support cases (default 20 per customer)
  --seed N           random seed: the same seed and date give the same data (default 42)
  --as-of DATE       the day the data is seen from, YYYY-MM-DD (default today, UTC)
  --data-dir DIR     where the databases go (default $DATA_DIR, else ./data)
  --force            replace databases that already exist
  --help             show this help`;

/** Where the CLI writes and what it reads from its surroundings; tests pass their own. */
export interface SeedCliIo {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const processIo: SeedCliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  // What every service shares: DATA_DIR from the environment, .env or concord.yaml.
  get env() {
    return configuredEnv(null);
  },
  cwd: process.cwd(),
};

class UsageError extends Error {}

function wholeNumber(flag: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(text)})`);
  }
  return value;
}

/**
 * Runs the seed command with the given arguments (without the node and script paths).
 * Resolves to the exit code: 0 on success or when the databases already exist, 1 when seeding
 * failed, 2 for bad arguments.
 */
export async function runSeedCli(argv: string[], io: SeedCliIo = processIo): Promise<number> {
  let options: SeedOptions;
  let dataDir: string;
  let force: boolean;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        customers: { type: 'string' },
        orders: { type: 'string' },
        cases: { type: 'string' },
        seed: { type: 'string' },
        'as-of': { type: 'string' },
        'data-dir': { type: 'string' },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const defaults = defaultSeedOptions(values['as-of']);
    const customers = wholeNumber('--customers', values.customers, 1, SEED_LIMITS.customers) ?? defaults.customers;
    options = {
      customers,
      orders: wholeNumber('--orders', values.orders, 0, SEED_LIMITS.orders) ?? Math.min(customers * 10, SEED_LIMITS.orders),
      cases: wholeNumber('--cases', values.cases, 0, SEED_LIMITS.cases) ?? Math.min(customers * 20, SEED_LIMITS.cases),
      seed: wholeNumber('--seed', values.seed, 0, 0xffffffff) ?? defaults.seed,
      asOf: defaults.asOf,
    };
    try {
      validateSeedOptions(options);
    } catch {
      throw new UsageError(`--as-of must be a calendar date as YYYY-MM-DD (got ${JSON.stringify(values['as-of'])})`);
    }
    dataDir = resolve(io.cwd, values['data-dir'] ?? (io.env['DATA_DIR'] || 'data'));
    force = values.force;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.err(`seed: ${message}`);
    io.err('Run with --help for usage.');
    return 2;
  }

  const paths = databasePaths(dataDir);
  const existing = Object.values(paths).filter((path) => existsSync(path));
  if (existing.length > 0 && !force) {
    const names = existing.map((path) => basename(path)).join(', ');
    io.out(
      existing.length === 3
        ? `Databases already exist in ${dataDir}; nothing written. Use --force to replace them.`
        : `Some databases already exist in ${dataDir} (${names}); nothing written. Use --force to rebuild all three.`,
    );
    return 0;
  }

  io.out(
    `Seeding ${dataDir}: ${options.customers} customers, ${options.orders} orders, ${options.cases} cases ` +
      `(seed ${options.seed}, as of ${options.asOf})`,
  );
  try {
    const summary = seedDataDirectory(dataDir, options);
    for (const line of formatSeedSummary(summary)) io.out(line);
    return 0;
  } catch (error) {
    io.err(`seed: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  }
}

const script = process.argv[1];
if (script !== undefined && import.meta.url === pathToFileURL(resolve(script)).href) {
  process.exitCode = await runSeedCli(process.argv.slice(2));
}
