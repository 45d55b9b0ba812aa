import { z } from 'zod';
import { feedPollMs } from '../../../platform/events/config.ts';
import { ConfigError, httpUrl, readEnv } from '../../../platform/config.ts';
import { configuredEnv } from '../../../platform/config-file.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { loadResiliencePolicy, required, resilienceEnvSchema, type TokenConfig } from '../../../platform/vendor-config.ts';
import { loadSubgraphConfig, subgraphEnvSchema, type SubgraphConfig, type SubgraphSystem } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

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

/** How the ERP's changes become canonical events (see src/feed/). */
export interface ErpFeedConfig {
  /** How often the embedded ERP's change log is read, in ms (ERP_FEED_POLL_MS). */
  readonly pollMs: number;
  /** The clientState `POST /hooks/business-central` accepts; null: the endpoint is off. */
  readonly businessCentralClientState: string | null;
  /** How often Business Central is asked for what changed, in seconds (ERP_POLL_SECONDS); 0: never. */
  readonly pollSeconds: number;
}

export interface ErpConfig extends SubgraphConfig {
  readonly businessCentral: BusinessCentralConfig | null;
  readonly feed: ErpFeedConfig;
}

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

const feedSchema = z.object({
  ERP_FEED_POLL_MS: feedPollMs('ERP'),
  BC_WEBHOOK_CLIENT_STATE: z.string().min(16, 'must be at least 16 characters').optional().meta({
    description:
      "The clientState of the Business Central webhook subscriptions that notify `POST /hooks/business-central` (customers, salesOrders, salesInvoices, the extension's shipments): each notification's record is read from Business Central and published as a canonical event. With `ERP_CONNECTOR=business-central`.",
    defaultText: 'unset: the endpoint is off',
  }),
  ERP_POLL_SECONDS: z.coerce
    .number({ error: 'must be a number of seconds' })
    .min(0, 'must be 0 (off) or more')
    .max(86_400, 'must be at most 86400')
    .default(0)
    .describe(
      `How often Business Central is asked for the customers, sales orders, shipments and invoices changed since the last time (\`$filter=lastModifiedDateTime gt …\`), for a company whose webhooks cannot reach Concord; 0: never. The cursor is kept in \`DATA_DIR/erp-feed.sqlite\`.${bc}`,
    ),
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
  return [subgraphEnvSchema(ERP_SYSTEM), bcSchema, feedSchema, resilienceEnvSchema('ERP', BUSINESS_CENTRAL_POLICY)];
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
  return Object.freeze({
    ...base,
    businessCentral: base.connectorKind === 'business-central' ? loadBusinessCentral(env) : null,
    feed: loadFeed(env, base.connectorKind),
  });
}

/**
 * The feed's settings. The webhook and the poller need the Business Central connector: the
 * embedded ERP tells its changes through its own change log, and would be told twice.
 */
function loadFeed(env: NodeJS.ProcessEnv, connectorKind: string): ErpFeedConfig {
  const vars = readEnv(feedSchema, env);
  const onlyWithBc = (variable: string) =>
    new ConfigError(
      `Invalid configuration:\n  ${variable}: needs ERP_CONNECTOR=business-central (the embedded ERP publishes its changes from its change log)`,
    );
  if (connectorKind !== 'business-central') {
    if (vars.BC_WEBHOOK_CLIENT_STATE) throw onlyWithBc('BC_WEBHOOK_CLIENT_STATE');
    if (vars.ERP_POLL_SECONDS > 0) throw onlyWithBc('ERP_POLL_SECONDS');
  }
  return Object.freeze({
    pollMs: vars.ERP_FEED_POLL_MS,
    businessCentralClientState: vars.BC_WEBHOOK_CLIENT_STATE ?? null,
    pollSeconds: vars.ERP_POLL_SECONDS,
  });
}
