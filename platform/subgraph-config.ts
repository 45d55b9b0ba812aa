import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, dataDir, environment, host, logLevel, port, readEnv, shutdownGraceMs } from './config.ts';
import { eventsEnvSchema, loadEventsConfig, type EventsConfig } from './events/config.ts';
import { metricsEndpointOf, metricsPort, metricsToken, type MetricsEndpoint } from './metrics-endpoint.ts';
import { openDatabase, problemWithDatabase, type Database, type ExpectedSchema } from './sqlite.ts';

/** A subgraph's metrics port in production when <PREFIX>_METRICS_PORT is not given: its default API port plus this. */
const PRODUCTION_METRICS_PORT_OFFSET = 5400;

/** Where an embedded adapter keeps its database, and which variable said so. */
export interface EmbeddedConnectorConfig {
  readonly kind: 'embedded';
  readonly database: string;
  /** The variable that set `database` (<PREFIX>_DATABASE or DATA_DIR), for error messages. */
  readonly databaseVariable: string;
}

export interface SubgraphConfig {
  /** Which adapter serves the system: 'embedded' (the default) or a vendor's. */
  readonly connectorKind: string;
  readonly environment: z.infer<typeof environment>;
  readonly dataDir: string;
  /** PEM (SPKI) of the key the gateway signs internal tokens with; null: the data folder's dev key. */
  readonly internalTokenPublicKey: string | null;
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof logLevel>;
  readonly connector: EmbeddedConnectorConfig;
  /**
   * Simulated latency of every call to the embedded system, in ms (<PREFIX>_LATENCY_MS; 0: none),
   * so a benchmark sees what round trips to a real vendor would cost. Embedded connector only.
   */
  readonly latencyMs: number;
  /** Where GET /metrics is served (<PREFIX>_METRICS_PORT, METRICS_TOKEN). */
  readonly metrics: MetricsEndpoint;
  /** How long a stop lets requests in flight finish (SHUTDOWN_GRACE_MS); default 10 s. */
  readonly shutdownGraceMs?: number;
  /** The broker the service publishes its canonical events to (EVENT_BROKER, …). */
  readonly events: EventsConfig;
}

/** Which system a subgraph serves, as its configuration sees it. */
export interface SubgraphSystem {
  readonly prefix: string;
  readonly defaultPort: number;
  readonly databaseFile: string;
  readonly connectors?: readonly [string, ...string[]];
  /** False for a service over no system of its own (the process service): no connector to choose in production. */
  readonly hasSystem?: boolean;
}

/** The variables every subgraph reads, for the system with this prefix (CRM_PORT, CRM_CONNECTOR, …). */
export function subgraphEnvSchema(system: SubgraphSystem) {
  const { prefix } = system;
  const name = prefix.toLowerCase();
  const connectors = system.connectors ?? ['embedded'];
  return z
    .object({
      [`${prefix}_PORT`]: port(system.defaultPort).describe(`Port of the ${name} subgraph (POST /graphql, /health, /ready).`),
      CONCORD_ENV: environment,
      INTERNAL_TOKEN_PUBLIC_KEY: z.string().includes('PUBLIC KEY', { error: 'must be a PEM public key (SPKI)' }).optional().meta({
        description:
          'PEM (SPKI) public half of `INTERNAL_TOKEN_PRIVATE_KEY`: subgraphs verify the tokens the gateway signs for each call with it. Required in production.',
        defaultText: 'the development key in `DATA_DIR`',
      }),
      HOST: host,
      LOG_LEVEL: logLevel,
      DATA_DIR: dataDir,
      [`${prefix}_CONNECTOR`]: z
        .enum(connectors, { error: `must be one of ${connectors.join(', ')}` })
        .default('embedded')
        .describe(
          `Which adapter serves the ${name}: ${connectors.map((connector) => `\`${connector}\``).join(', ')} (the vendors' settings are in docs/connectors.md). Required in production, where the demo system is never a silent default.`,
        ),
      [`${prefix}_DATABASE`]: z
        .string()
        .optional()
        .meta({
          description: `The embedded ${name} database file. It must exist and hold the ${name}'s tables (\`npm start\` seeds missing ones, \`npm run seed\` writes them): a wrong path stops the service instead of serving an empty system.`,
          defaultText: `\`DATA_DIR/${system.databaseFile}\``,
        }),
      [`${prefix}_LATENCY_MS`]: z.coerce
        .number({ error: 'must be a number of milliseconds' })
        .int('must be a whole number of milliseconds')
        .min(0, 'must be 0 (off) or more')
        .max(60_000, 'must be at most 60000')
        .default(0)
        .describe('Simulated latency of every call to the embedded system, in ms, for benchmarks (embedded connector only).'),
      [`${prefix}_METRICS_PORT`]: metricsPort.meta({
        description: 'Serve `GET /metrics` on this port only, not on the API port.',
        defaultText:
          system.defaultPort === 0
            ? 'unset'
            : `unset: the API port; \`${system.defaultPort + PRODUCTION_METRICS_PORT_OFFSET}\` in production`,
      }),
      METRICS_TOKEN: metricsToken,
      SHUTDOWN_GRACE_MS: shutdownGraceMs,
    })
    .extend(eventsEnvSchema.shape);
}

/**
 * A subgraph's configuration from the environment: <PREFIX>_PORT, HOST, LOG_LEVEL, CONCORD_ENV,
 * INTERNAL_TOKEN_PUBLIC_KEY, <PREFIX>_CONNECTOR, the embedded database (<PREFIX>_DATABASE, or
 * <file> in DATA_DIR) and its simulated latency (<PREFIX>_LATENCY_MS).
 */
export function loadSubgraphConfig(system: SubgraphSystem, env: NodeJS.ProcessEnv): SubgraphConfig {
  const { prefix } = system;
  const schema = subgraphEnvSchema(system);
  const vars = readEnv(schema, env) as Record<string, unknown>;
  // In production the demo systems are never a silent default: the adapter is chosen, not assumed.
  if (vars.CONCORD_ENV === 'production' && system.hasSystem !== false && !env[`${prefix}_CONNECTOR`]) {
    throw new ConfigError(
      `Invalid configuration:\n  ${prefix}_CONNECTOR: required when CONCORD_ENV=production (one of ${(system.connectors ?? ['embedded']).join(', ')})`,
    );
  }
  const latencyMs = vars[`${prefix}_LATENCY_MS`] as number;
  // A vendor's latency is real: simulating more on top of it would only falsify measurements.
  if (latencyMs > 0 && vars[`${prefix}_CONNECTOR`] !== 'embedded') {
    throw new ConfigError(
      `Invalid configuration:\n  ${prefix}_LATENCY_MS: simulates latency for the embedded connector only (got ${latencyMs} with ${prefix}_CONNECTOR=${vars[`${prefix}_CONNECTOR`] as string})`,
    );
  }
  const database = vars[`${prefix}_DATABASE`] as string | undefined;
  const publicKey = (vars.INTERNAL_TOKEN_PUBLIC_KEY as string | undefined) ?? null;
  if (vars.CONCORD_ENV === 'production' && publicKey === null) {
    throw new ConfigError(
      'Invalid configuration:\n  INTERNAL_TOKEN_PUBLIC_KEY: required when CONCORD_ENV=production (development keys are refused)',
    );
  }
  return Object.freeze({
    connectorKind: vars[`${prefix}_CONNECTOR`] as string,
    environment: vars.CONCORD_ENV as z.infer<typeof environment>,
    dataDir: vars.DATA_DIR as string,
    internalTokenPublicKey: publicKey,
    host: vars.HOST as string,
    port: vars[`${prefix}_PORT`] as number,
    logLevel: vars.LOG_LEVEL as z.infer<typeof logLevel>,
    connector: Object.freeze({
      kind: 'embedded' as const,
      database: database ?? join(vars.DATA_DIR as string, system.databaseFile),
      databaseVariable: database ? `${prefix}_DATABASE` : 'DATA_DIR',
    }),
    latencyMs,
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS as number,
    events: loadEventsConfig(env, vars.DATA_DIR as string, vars.CONCORD_ENV === 'production'),
    metrics: metricsEndpointOf({
      port: vars[`${prefix}_METRICS_PORT`] as number | undefined,
      token: vars.METRICS_TOKEN as string | undefined,
      production: vars.CONCORD_ENV === 'production',
      // In production, off the API port: 9401 for the API's 4001, and so on.
      productionPort: system.defaultPort === 0 ? 0 : system.defaultPort + PRODUCTION_METRICS_PORT_OFFSET,
      portVariable: `${prefix}_METRICS_PORT`,
      apiPort: vars[`${prefix}_PORT`] as number,
      apiPortVariable: `${prefix}_PORT`,
    }),
  });
}

/**
 * Opens an embedded system's database, which must exist and hold the system's tables and rows: a
 * service pointed at the wrong, an empty or a damaged file stops at start-up, naming the file and
 * the variable, instead of serving an empty system.
 */
export function openEmbeddedDatabase(connector: EmbeddedConnectorConfig, expected: ExpectedSchema): Database {
  const refuse = (problem: string) =>
    new ConfigError(`Invalid configuration:\n  ${connector.databaseVariable}: ${connector.database} ${problem} (${SEED_HINT})`);
  if (connector.database !== ':memory:' && !existsSync(connector.database)) throw refuse('does not exist');
  let db: Database;
  try {
    db = openDatabase(connector.database);
  } catch (error) {
    throw refuse(`is not a readable SQLite database (${(error as Error).message})`);
  }
  const problem = problemWithDatabase(db, expected);
  if (problem) {
    db.close();
    throw refuse(problem);
  }
  return db;
}

const SEED_HINT = 'npm run seed writes the demo databases, --force replaces them; npm start does so when the data folder is empty';
