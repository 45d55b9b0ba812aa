import { z } from 'zod';
import { readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';
import { httpUrl, loadResiliencePolicy, required, type TokenConfig } from '../../../platform/vendor-config.ts';

/** Connecting to a real Salesforce org (CRM_CONNECTOR=salesforce). */
export interface SalesforceConfig {
  readonly instanceUrl: string;
  readonly apiVersion: string;
  /** JWT bearer (a server's connected app), a refresh token, or a fixed access token. */
  readonly token: TokenConfig;
  readonly policy: ResiliencePolicy;
}

export interface CrmConfig extends SubgraphConfig {
  readonly salesforce: SalesforceConfig | null;
}

const schema = z.object({
  SALESFORCE_INSTANCE_URL: httpUrl.optional(),
  SALESFORCE_API_VERSION: z
    .string()
    .regex(/^\d+\.\d$/, 'must look like 59.0')
    .default('59.0'),
  SALESFORCE_LOGIN_URL: httpUrl.default('https://login.salesforce.com'),
  SALESFORCE_CLIENT_ID: z.string().optional(),
  SALESFORCE_CLIENT_SECRET: z.string().optional(),
  SALESFORCE_USERNAME: z.string().optional(),
  SALESFORCE_PRIVATE_KEY: z.string().includes('PRIVATE KEY', { error: 'must be a PEM private key (PKCS #8)' }).optional(),
  SALESFORCE_REFRESH_TOKEN: z.string().optional(),
  SALESFORCE_ACCESS_TOKEN: z.string().optional(),
});

/** The CRM subgraph's configuration, read once from the environment (CRM_PORT, CRM_CONNECTOR, CRM_DATABASE, SALESFORCE_*, …). */
export function loadCrmConfig(env: NodeJS.ProcessEnv = process.env): CrmConfig {
  const base = loadSubgraphConfig(
    { prefix: 'CRM', defaultPort: 4001, databaseFile: EMBEDDED_DATABASE_FILES.crm, connectors: ['embedded', 'salesforce'] },
    env,
  );
  if (base.connectorKind !== 'salesforce') return Object.freeze({ ...base, salesforce: null });
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
    salesforce: Object.freeze({
      instanceUrl: required(vars.SALESFORCE_INSTANCE_URL, 'SALESFORCE_INSTANCE_URL', why),
      apiVersion: vars.SALESFORCE_API_VERSION,
      token,
      // Salesforce allows 25 long-running requests per org; stay well below.
      policy: loadResiliencePolicy('CRM', env, { maxConcurrent: 10 }),
    }),
  });
}
