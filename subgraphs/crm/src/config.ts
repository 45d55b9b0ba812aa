import { z } from 'zod';
import { feedPollMs } from '../../../platform/events/config.ts';
import { ConfigError, readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { configuredEnv } from '../../../platform/config-file.ts';
import { loadSubgraphConfig, subgraphEnvSchema, type SubgraphConfig, type SubgraphSystem } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';
import { httpUrl, loadResiliencePolicy, required, resilienceEnvSchema, type TokenConfig } from '../../../platform/vendor-config.ts';

/** Connecting to a real Salesforce org (CRM_CONNECTOR=salesforce). */
export interface SalesforceConfig {
  readonly instanceUrl: string;
  readonly apiVersion: string;
  /** JWT bearer (a server's connected app), a refresh token, or a fixed access token. */
  readonly token: TokenConfig;
  readonly policy: ResiliencePolicy;
}

/** How the CRM's changes become canonical events (see src/feed/). */
export interface CrmFeedConfig {
  /** How often the embedded CRM's change log is read, in ms (CRM_FEED_POLL_MS). */
  readonly pollMs: number;
  /** The secret `POST /hooks/salesforce` checks signatures with; null: the endpoint is off. */
  readonly salesforceWebhookSecret: string | null;
}

export interface CrmConfig extends SubgraphConfig {
  readonly salesforce: SalesforceConfig | null;
  readonly feed: CrmFeedConfig;
}

const salesforce = ' With `CRM_CONNECTOR=salesforce`.';
const schema = z.object({
  SALESFORCE_INSTANCE_URL: httpUrl.optional().describe(`The org's URL (https://<domain>.my.salesforce.com).${salesforce}`),
  SALESFORCE_API_VERSION: z
    .string()
    .regex(/^\d+\.\d$/, 'must look like 59.0')
    .default('59.0')
    .describe(`The REST API version called.${salesforce}`),
  SALESFORCE_LOGIN_URL: httpUrl
    .default('https://login.salesforce.com')
    .describe(`Where tokens are issued (https://test.salesforce.com for a sandbox).${salesforce}`),
  SALESFORCE_CLIENT_ID: z.string().optional().describe(`The connected app's consumer key (JWT bearer or refresh token).${salesforce}`),
  SALESFORCE_CLIENT_SECRET: z.string().optional().describe(`The connected app's consumer secret, with a refresh token.${salesforce}`),
  SALESFORCE_USERNAME: z.string().optional().describe(`The integration user the JWT bearer flow acts as.${salesforce}`),
  SALESFORCE_PRIVATE_KEY: z
    .string()
    .includes('PRIVATE KEY', { error: 'must be a PEM private key (PKCS #8)' })
    .optional()
    .describe(`PEM (PKCS #8) key of the certificate uploaded to the connected app, for the JWT bearer flow.${salesforce}`),
  SALESFORCE_REFRESH_TOKEN: z.string().optional().describe(`A refresh token instead of the JWT bearer flow.${salesforce}`),
  SALESFORCE_ACCESS_TOKEN: z.string().optional().describe(`A fixed access token instead of either grant (tests, short jobs).${salesforce}`),
});

const feedSchema = z.object({
  CRM_FEED_POLL_MS: feedPollMs('CRM'),
  SALESFORCE_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional().meta({
    description:
      'Secret the relay of Salesforce Change Data Capture events signs `POST /hooks/salesforce` with (`X-Concord-Signature`: base64 HMAC-SHA256 of `X-Concord-Signature-Timestamp` and the body). Each change event becomes a canonical event, its keys read from the org. With `CRM_CONNECTOR=salesforce`.',
    defaultText: 'unset: the endpoint is off',
  }),
});

/** Salesforce allows 25 long-running requests per org; stay well below. */
const SALESFORCE_POLICY = { maxConcurrent: 10 };

/** Every variable the CRM subgraph reads, for the configuration reference. */
export function crmVariables() {
  return [subgraphEnvSchema(CRM_SYSTEM), schema, feedSchema, resilienceEnvSchema('CRM', SALESFORCE_POLICY)];
}

const CRM_SYSTEM: SubgraphSystem = {
  prefix: 'CRM',
  defaultPort: 4001,
  databaseFile: EMBEDDED_DATABASE_FILES.crm,
  connectors: ['embedded', 'salesforce'],
};

/** The CRM subgraph's configuration, read once from the environment (CRM_PORT, CRM_CONNECTOR, CRM_DATABASE, SALESFORCE_*, …). */
export function loadCrmConfig(env: NodeJS.ProcessEnv = configuredEnv('crm')): CrmConfig {
  const base = loadSubgraphConfig(CRM_SYSTEM, env);
  const feed = loadFeed(env, base.connectorKind);
  if (base.connectorKind !== 'salesforce') return Object.freeze({ ...base, salesforce: null, feed });
  const vars = readEnv(schema, env);
  const why = 'with CRM_CONNECTOR=salesforce';
  const tokenUrl = `${vars.SALESFORCE_LOGIN_URL.replace(/\/$/, '')}/services/oauth2/token`;
  let token: TokenConfig;
  if (vars.SALESFORCE_ACCESS_TOKEN) token = { kind: 'static', token: vars.SALESFORCE_ACCESS_TOKEN };
  else if (vars.SALESFORCE_REFRESH_TOKEN) {
    token = {
      kind: 'refresh_token',
      tokenUrl,
      clientId: required(vars.SALESFORCE_CLIENT_ID, 'SALESFORCE_CLIENT_ID', 'with SALESFORCE_REFRESH_TOKEN'),
      clientSecret: vars.SALESFORCE_CLIENT_SECRET,
      refreshToken: vars.SALESFORCE_REFRESH_TOKEN,
    };
  } else {
    token = {
      kind: 'jwt_bearer',
      tokenUrl,
      clientId: required(vars.SALESFORCE_CLIENT_ID, 'SALESFORCE_CLIENT_ID', `${why} (the connected app's consumer key)`),
      username: required(vars.SALESFORCE_USERNAME, 'SALESFORCE_USERNAME', `${why} (the integration user)`),
      audience: vars.SALESFORCE_LOGIN_URL,
      privateKeyPem: required(
        vars.SALESFORCE_PRIVATE_KEY,
        'SALESFORCE_PRIVATE_KEY',
        `${why} (the key of the connected app's certificate), or give SALESFORCE_REFRESH_TOKEN`,
      ),
    };
  }
  return Object.freeze({
    ...base,
    feed,
    salesforce: Object.freeze({
      instanceUrl: required(vars.SALESFORCE_INSTANCE_URL, 'SALESFORCE_INSTANCE_URL', why),
      apiVersion: vars.SALESFORCE_API_VERSION,
      token,
      policy: loadResiliencePolicy('CRM', env, SALESFORCE_POLICY),
    }),
  });
}

/**
 * The feed's settings. The webhook needs the Salesforce connector: the embedded CRM tells its
 * changes through its own change log, and a relay's events for it would be told twice.
 */
function loadFeed(env: NodeJS.ProcessEnv, connectorKind: string): CrmFeedConfig {
  const vars = readEnv(feedSchema, env);
  if (vars.SALESFORCE_WEBHOOK_SECRET && connectorKind !== 'salesforce')
    throw new ConfigError(
      'Invalid configuration:\n  SALESFORCE_WEBHOOK_SECRET: needs CRM_CONNECTOR=salesforce (the embedded CRM publishes its changes from its change log)',
    );
  return Object.freeze({ pollMs: vars.CRM_FEED_POLL_MS, salesforceWebhookSecret: vars.SALESFORCE_WEBHOOK_SECRET ?? null });
}
