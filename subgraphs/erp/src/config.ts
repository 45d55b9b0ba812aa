import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, httpUrl, positiveInt, readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { loadResiliencePolicy, required, type TokenConfig } from '../../../platform/vendor-config.ts';
import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

/** The return process: where it keeps its state, how it reaches the graph, its limits. */
export interface ReturnsConfig {
  /** SQLite file of the process store (idempotency keys, outbox). */
  readonly processDatabase: string;
  /** The gateway, through which the process reads cases and delivers follow-on writes. */
  readonly gatewayUrl: string;
  /** How the process gets tokens for the integration identity; null: signed with the dev issuer key. */
  readonly serviceToken: TokenConfig | null;
  /** Largest total a support agent may authorize alone on one case within agentLimitWindowHours. */
  readonly agentLimit: number;
  readonly agentLimitWindowHours: number;
  readonly idempotencyTtlMs: number;
  /** How long a request waits for a concurrent one with its key: less than the gateway's deadline. */
  readonly idempotencyWaitMs: number;
  /** A claim whose holding process has been silent this long is taken over (long before its lease). */
  readonly idempotencyHolderTimeoutMs: number;
  readonly outbox: { readonly pollMs: number; readonly maxAttempts: number; readonly baseDelayMs: number; readonly maxDelayMs: number };
}

/** Connecting to a real Business Central company (ERP_CONNECTOR=business-central). */
export interface BusinessCentralConfig {
  /** https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment} */
  readonly baseUrl: string;
  readonly companyId: string;
  /** The custom API page (an extension) for carriers, serial numbers, warranty and return orders. */
  readonly extension: { readonly publisher: string; readonly group: string; readonly version: string };
  /** OAuth 2.0 client credentials (an Entra app registration), or a fixed access token. */
  readonly token: TokenConfig;
  readonly policy: ResiliencePolicy;
}

export interface ErpConfig extends SubgraphConfig {
  readonly returns: ReturnsConfig;
  readonly businessCentral: BusinessCentralConfig | null;
}

const schema = z.object({
  DATA_DIR: z.string().default('data'),
  PROCESS_DATABASE: z.string().optional(),
  GATEWAY_URL: httpUrl.default('http://localhost:4000/graphql'),
  SERVICE_TOKEN: z.string().min(20, 'must be a bearer token').optional(),
  SERVICE_TOKEN_URL: httpUrl.optional(),
  SERVICE_CLIENT_ID: z.string().optional(),
  SERVICE_CLIENT_SECRET: z.string().optional(),
  SERVICE_SCOPE: z.string().optional(),
  RMA_AGENT_LIMIT: z.coerce.number({ error: 'must be an amount' }).positive('must be above 0').default(25_000),
  IDEMPOTENCY_TTL_HOURS: positiveInt(24),
  RMA_AGENT_LIMIT_WINDOW_HOURS: positiveInt(24),
  // The gateway's deadline for one subgraph call (the variable the gateway reads): the wait for a
  // key in progress is sized from it.
  SUBGRAPH_TIMEOUT_MS: positiveInt(10_000),
  IDEMPOTENCY_WAIT_MS: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be 0 or more').optional(),
  IDEMPOTENCY_HOLDER_TIMEOUT_MS: positiveInt(5_000),
  OUTBOX_POLL_MS: positiveInt(500),
  OUTBOX_MAX_ATTEMPTS: positiveInt(10),
  OUTBOX_BASE_DELAY_MS: positiveInt(1_000),
  OUTBOX_MAX_DELAY_MS: positiveInt(300_000),
});

const bcSchema = z.object({
  BC_BASE_URL: httpUrl.optional(),
  BC_COMPANY_ID: z.string().optional(),
  BC_EXTENSION_PUBLISHER: z.string().default('concord'),
  BC_EXTENSION_GROUP: z.string().default('integration'),
  BC_EXTENSION_VERSION: z.string().default('v1.0'),
  BC_TENANT_ID: z.string().optional(),
  BC_CLIENT_ID: z.string().optional(),
  BC_CLIENT_SECRET: z.string().optional(),
  BC_TOKEN_URL: httpUrl.optional(),
  BC_SCOPE: z.string().default('https://api.businesscentral.dynamics.com/.default'),
  BC_ACCESS_TOKEN: z.string().optional(),
});

function loadBusinessCentral(env: NodeJS.ProcessEnv): BusinessCentralConfig {
  const vars = readEnv(bcSchema, env);
  const why = 'with ERP_CONNECTOR=business-central';
  const token: TokenConfig = vars.BC_ACCESS_TOKEN
    ? { kind: 'static', token: vars.BC_ACCESS_TOKEN }
    : {
        kind: 'client_credentials',
        tokenUrl:
          vars.BC_TOKEN_URL ??
          `https://login.microsoftonline.com/${required(vars.BC_TENANT_ID, 'BC_TENANT_ID', `${why} (or BC_TOKEN_URL)`)}/oauth2/v2.0/token`,
        clientId: required(vars.BC_CLIENT_ID, 'BC_CLIENT_ID', `${why} (the app registration), or give BC_ACCESS_TOKEN`),
        clientSecret: required(vars.BC_CLIENT_SECRET, 'BC_CLIENT_SECRET', `${why}, or give BC_ACCESS_TOKEN`),
        scope: vars.BC_SCOPE,
      };
  return Object.freeze({
    baseUrl: required(vars.BC_BASE_URL, 'BC_BASE_URL', `${why} (https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment})`),
    companyId: required(vars.BC_COMPANY_ID, 'BC_COMPANY_ID', why),
    extension: Object.freeze({
      publisher: vars.BC_EXTENSION_PUBLISHER,
      group: vars.BC_EXTENSION_GROUP,
      version: vars.BC_EXTENSION_VERSION,
    }),
    token,
    // Business Central allows 6,000 requests per 5 minutes and few in parallel per user.
    policy: loadResiliencePolicy('ERP', env, { maxConcurrent: 5 }),
  });
}

/**
 * The return process's service identity: a fixed token, or client credentials at the issuer
 * (the `erp-returns-process` client). Development falls back to the dev key; production may not.
 */
function serviceTokenOf(vars: z.infer<typeof schema>, production: boolean): TokenConfig | null {
  if (vars.SERVICE_TOKEN) return { kind: 'static', token: vars.SERVICE_TOKEN };
  if (vars.SERVICE_TOKEN_URL || vars.SERVICE_CLIENT_ID) {
    return {
      kind: 'client_credentials',
      tokenUrl: required(vars.SERVICE_TOKEN_URL, 'SERVICE_TOKEN_URL', "with SERVICE_CLIENT_ID (the issuer's token endpoint)"),
      clientId: required(vars.SERVICE_CLIENT_ID, 'SERVICE_CLIENT_ID', 'with SERVICE_TOKEN_URL'),
      clientSecret: required(vars.SERVICE_CLIENT_SECRET, 'SERVICE_CLIENT_SECRET', 'with SERVICE_CLIENT_ID'),
      scope: vars.SERVICE_SCOPE,
    };
  }
  if (production)
    required(
      undefined,
      'SERVICE_CLIENT_ID',
      'when CONCORD_ENV=production (with SERVICE_TOKEN_URL and SERVICE_CLIENT_SECRET), or SERVICE_TOKEN',
    );
  return null;
}

/** The ERP subgraph's configuration, read once from the environment (ERP_PORT, ERP_CONNECTOR, ERP_DATABASE, …). */
export function loadErpConfig(env: NodeJS.ProcessEnv = process.env): ErpConfig {
  const base = loadSubgraphConfig(
    { prefix: 'ERP', defaultPort: 4002, databaseFile: EMBEDDED_DATABASE_FILES.erp, connectors: ['embedded', 'business-central'] },
    env,
  );
  const vars = readEnv(schema, env);
  const idempotencyWaitMs = vars.IDEMPOTENCY_WAIT_MS ?? Math.floor(vars.SUBGRAPH_TIMEOUT_MS / 2);
  if (idempotencyWaitMs >= vars.SUBGRAPH_TIMEOUT_MS) {
    throw new ConfigError(
      `Invalid configuration:\n  IDEMPOTENCY_WAIT_MS: must be less than SUBGRAPH_TIMEOUT_MS (${vars.SUBGRAPH_TIMEOUT_MS}), ` +
        `or the gateway gives up before the client hears IDEMPOTENCY_KEY_IN_PROGRESS (got ${idempotencyWaitMs})`,
    );
  }
  return Object.freeze({
    ...base,
    businessCentral: base.connectorKind === 'business-central' ? loadBusinessCentral(env) : null,
    returns: Object.freeze({
      processDatabase: vars.PROCESS_DATABASE ?? join(vars.DATA_DIR, 'processes.sqlite'),
      gatewayUrl: vars.GATEWAY_URL,
      serviceToken: serviceTokenOf(vars, base.environment === 'production'),
      agentLimit: vars.RMA_AGENT_LIMIT,
      agentLimitWindowHours: vars.RMA_AGENT_LIMIT_WINDOW_HOURS,
      idempotencyTtlMs: vars.IDEMPOTENCY_TTL_HOURS * 3_600_000,
      idempotencyWaitMs,
      idempotencyHolderTimeoutMs: vars.IDEMPOTENCY_HOLDER_TIMEOUT_MS,
      outbox: Object.freeze({
        pollMs: vars.OUTBOX_POLL_MS,
        maxAttempts: vars.OUTBOX_MAX_ATTEMPTS,
        baseDelayMs: vars.OUTBOX_BASE_DELAY_MS,
        maxDelayMs: vars.OUTBOX_MAX_DELAY_MS,
      }),
    }),
  });
}
