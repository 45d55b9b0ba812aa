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

/** Connecting to an SAP S/4HANA Cloud tenant (ERP_CONNECTOR=s4hana). */
export interface S4HanaConfig {
  /** The tenant's API host: https://my123456-api.s4hana.cloud.sap */
  readonly baseUrl: string;
  /** OAuth 2.0 client credentials or a fixed token; or a communication user (basic). */
  readonly auth:
    { readonly kind: 'oauth'; readonly token: TokenConfig } | { readonly kind: 'basic'; readonly user: string; readonly password: string };
  /** The company code's currency, in which product prices are kept. */
  readonly companyCurrency: string;
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
  readonly s4hana: S4HanaConfig | null;
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

const s4 = ' With `ERP_CONNECTOR=s4hana`.';
const s4Schema = z.object({
  S4HANA_BASE_URL: httpUrl.optional().describe(`The tenant's API host (https://my123456-api.s4hana.cloud.sap).${s4}`),
  S4HANA_TOKEN_URL: httpUrl
    .optional()
    .describe(
      `The token endpoint of the communication arrangement's OAuth 2.0 client (client credentials), e.g. https://<subdomain>.authentication.<region>.hana.ondemand.com/oauth/token.${s4}`,
    ),
  S4HANA_CLIENT_ID: z.string().optional().describe(`The OAuth 2.0 client id (client credentials, with \`S4HANA_TOKEN_URL\`).${s4}`),
  S4HANA_CLIENT_SECRET: z.string().optional().describe(`Its client secret.${s4}`),
  S4HANA_SCOPE: z.string().optional().describe(`The scope asked for, if the arrangement needs one.${s4}`),
  S4HANA_ACCESS_TOKEN: z.string().optional().describe(`A fixed access token instead of client credentials.${s4}`),
  S4HANA_USER: z.string().optional().describe(`A communication user (basic auth, with \`S4HANA_PASSWORD\`), instead of OAuth.${s4}`),
  S4HANA_PASSWORD: z.string().optional().describe(`Its password.${s4}`),
  S4HANA_COMPANY_CURRENCY: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD')
    .default('USD')
    .describe(`The company code's currency, in which product prices are kept.${s4}`),
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

/** S/4HANA Cloud's communication users are served by a few work processes each: keep calls in flight few. */
const S4HANA_POLICY = { maxConcurrent: 5 };

/** Business Central allows 6,000 requests per 5 minutes and few in parallel per user. */
const BUSINESS_CENTRAL_POLICY = { maxConcurrent: 5 };

const ERP_SYSTEM: SubgraphSystem = {
  prefix: 'ERP',
  defaultPort: 4002,
  databaseFile: EMBEDDED_DATABASE_FILES.erp,
  connectors: ['embedded', 'business-central', 's4hana'],
};

/** Every variable the ERP subgraph reads, for the configuration reference. */
export function erpVariables() {
  return [subgraphEnvSchema(ERP_SYSTEM), bcSchema, s4Schema, feedSchema, resilienceEnvSchema('ERP', BUSINESS_CENTRAL_POLICY)];
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

function loadS4Hana(env: NodeJS.ProcessEnv): S4HanaConfig {
  const vars = readEnv(s4Schema, env);
  const why = 'with ERP_CONNECTOR=s4hana';
  const baseUrl = required(vars.S4HANA_BASE_URL, 'S4HANA_BASE_URL', `${why} (https://my123456-api.s4hana.cloud.sap)`);
  const auth: S4HanaConfig['auth'] = vars.S4HANA_ACCESS_TOKEN
    ? { kind: 'oauth', token: { kind: 'static', token: vars.S4HANA_ACCESS_TOKEN } }
    : vars.S4HANA_CLIENT_ID
      ? {
          kind: 'oauth',
          token: {
            kind: 'client_credentials',
            tokenUrl: required(vars.S4HANA_TOKEN_URL, 'S4HANA_TOKEN_URL', `${why} and S4HANA_CLIENT_ID`),
            clientId: vars.S4HANA_CLIENT_ID,
            clientSecret: required(vars.S4HANA_CLIENT_SECRET, 'S4HANA_CLIENT_SECRET', `${why} and S4HANA_CLIENT_ID`),
            scope: vars.S4HANA_SCOPE,
          },
        }
      : {
          kind: 'basic',
          user: required(vars.S4HANA_USER, 'S4HANA_USER', `${why} (a communication user), or give S4HANA_CLIENT_ID or S4HANA_ACCESS_TOKEN`),
          password: required(vars.S4HANA_PASSWORD, 'S4HANA_PASSWORD', `${why} with S4HANA_USER`),
        };
  return Object.freeze({
    baseUrl,
    auth,
    companyCurrency: vars.S4HANA_COMPANY_CURRENCY,
    policy: loadResiliencePolicy('ERP', env, S4HANA_POLICY),
  });
}

/** The ERP subgraph's configuration, read once from the environment (ERP_PORT, ERP_CONNECTOR, ERP_DATABASE, …). */
export function loadErpConfig(env: NodeJS.ProcessEnv = configuredEnv('erp')): ErpConfig {
  const base = loadSubgraphConfig(ERP_SYSTEM, env);
  return Object.freeze({
    ...base,
    businessCentral: base.connectorKind === 'business-central' ? loadBusinessCentral(env) : null,
    s4hana: base.connectorKind === 's4hana' ? loadS4Hana(env) : null,
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
