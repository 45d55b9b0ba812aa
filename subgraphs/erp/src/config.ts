import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, dataDir, httpUrl, positiveInt, readEnv, subgraphTimeoutMs } from '../../../platform/config.ts';
import { configuredEnv } from '../../../platform/config-file.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { serviceIdentityEnvSchema, serviceTokenConfigOf } from '../../../platform/service-identity.ts';
import { loadResiliencePolicy, required, resilienceEnvSchema, type TokenConfig } from '../../../platform/vendor-config.ts';
import { loadSubgraphConfig, subgraphEnvSchema, type SubgraphConfig, type SubgraphSystem } from '../../../platform/subgraph-config.ts';
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

const schema = serviceIdentityEnvSchema().extend({
  DATA_DIR: dataDir,
  PROCESS_DATABASE: z.string().optional().meta({
    description: "SQLite file of the return process's store: idempotency keys and the outbox.",
    defaultText: '`DATA_DIR/processes.sqlite`',
  }),
  RMA_AGENT_LIMIT: z.coerce
    .number({ error: 'must be an amount' })
    .positive('must be above 0')
    .default(25_000)
    .describe(
      'The largest total a support agent may authorize alone on one case within `RMA_AGENT_LIMIT_WINDOW_HOURS`; more needs a support lead, who has no limit.',
    ),
  IDEMPOTENCY_TTL_HOURS: positiveInt(24).describe('How long an idempotency key (and the answer it gave) is remembered.'),
  RMA_AGENT_LIMIT_WINDOW_HOURS: positiveInt(24).describe(
    'The window `RMA_AGENT_LIMIT` applies to: all one agent authorized on one case within it counts.',
  ),
  // The gateway's deadline for one subgraph call (the variable the gateway reads): the wait for a
  // key in progress is sized from it.
  SUBGRAPH_TIMEOUT_MS: subgraphTimeoutMs,
  IDEMPOTENCY_WAIT_MS: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be 0 or more')
    .optional()
    .meta({
      description:
        'How long a request waits for another one with its idempotency key before it is answered `IDEMPOTENCY_KEY_IN_PROGRESS`; must be below `SUBGRAPH_TIMEOUT_MS`.',
      defaultText: 'half of `SUBGRAPH_TIMEOUT_MS`',
    }),
  IDEMPOTENCY_HOLDER_TIMEOUT_MS: positiveInt(5_000).describe(
    'A key held by an erp process silent this long (no heartbeat: it died) is taken over at once, not after its lease.',
  ),
  OUTBOX_POLL_MS: positiveInt(500).describe('How often the outbox looks for follow-on writes to deliver, in ms.'),
  OUTBOX_MAX_ATTEMPTS: positiveInt(10).describe(
    'Deliveries of one outbox entry before it is dead-lettered (`npm run outbox` lists and replays them).',
  ),
  OUTBOX_BASE_DELAY_MS: positiveInt(1_000).describe('First backoff between delivery attempts, in ms; it doubles per attempt.'),
  OUTBOX_MAX_DELAY_MS: positiveInt(300_000).describe('Longest backoff between delivery attempts, in ms.'),
});

const bc = ' With `ERP_CONNECTOR=business-central`.';
const bcSchema = z.object({
  BC_BASE_URL: httpUrl.optional().describe(`https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}.${bc}`),
  BC_COMPANY_ID: z.string().optional().describe(`The company's id (a GUID).${bc}`),
  BC_EXTENSION_PUBLISHER: z
    .string()
    .default('concord')
    .describe(`Publisher of the extension API page for carriers, serial numbers, warranty and return orders.${bc}`),
  BC_EXTENSION_GROUP: z.string().default('integration').describe(`Its API group.${bc}`),
  BC_EXTENSION_VERSION: z.string().default('v1.0').describe(`Its API version.${bc}`),
  BC_TENANT_ID: z.string().optional().describe(`The Entra tenant, for the token endpoint (or give \`BC_TOKEN_URL\`).${bc}`),
  BC_CLIENT_ID: z.string().optional().describe(`The Entra app registration's client id (client credentials).${bc}`),
  BC_CLIENT_SECRET: z.string().optional().describe(`Its client secret.${bc}`),
  BC_TOKEN_URL: httpUrl.optional().meta({
    description: `The token endpoint.${bc}`,
    defaultText: '`https://login.microsoftonline.com/{BC_TENANT_ID}/oauth2/v2.0/token`',
  }),
  BC_SCOPE: z.string().default('https://api.businesscentral.dynamics.com/.default').describe(`The scope asked for.${bc}`),
  BC_ACCESS_TOKEN: z.string().optional().describe(`A fixed access token instead of client credentials.${bc}`),
});

/** Business Central allows 6,000 requests per 5 minutes and few in parallel per user. */
const BUSINESS_CENTRAL_POLICY = { maxConcurrent: 5 };

const ERP_SYSTEM: SubgraphSystem = {
  prefix: 'ERP',
  defaultPort: 4002,
  databaseFile: EMBEDDED_DATABASE_FILES.erp,
  connectors: ['embedded', 'business-central'],
};

/** Every variable the ERP subgraph reads, for the configuration reference. */
export function erpVariables() {
  return [subgraphEnvSchema(ERP_SYSTEM), schema, bcSchema, resilienceEnvSchema('ERP', BUSINESS_CENTRAL_POLICY)];
}

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
    policy: loadResiliencePolicy('ERP', env, BUSINESS_CENTRAL_POLICY),
  });
}

/** The ERP subgraph's configuration, read once from the environment (ERP_PORT, ERP_CONNECTOR, ERP_DATABASE, …). */
export function loadErpConfig(env: NodeJS.ProcessEnv = configuredEnv('erp')): ErpConfig {
  const base = loadSubgraphConfig(ERP_SYSTEM, env);
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
      serviceToken: serviceTokenConfigOf(vars, base.environment === 'production'),
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
