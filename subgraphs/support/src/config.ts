import { z } from 'zod';
import { readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { configuredEnv } from '../../../platform/config-file.ts';
import { loadSubgraphConfig, subgraphEnvSchema, type SubgraphConfig, type SubgraphSystem } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';
import { httpUrl, loadResiliencePolicy, required, resilienceEnvSchema } from '../../../platform/vendor-config.ts';

/** Connecting to a real Zendesk account (SUPPORT_CONNECTOR=zendesk). */
export interface ZendeskConfig {
  readonly baseUrl: string;
  readonly auth:
    { readonly kind: 'token'; readonly email: string; readonly apiToken: string } | { readonly kind: 'bearer'; readonly token: string };
  /** The account's ticket fields that hold the order number and the serial number. */
  readonly fieldIds: { readonly orderNumber: number; readonly serialNumber: number };
  readonly policy: ResiliencePolicy;
}

export interface SupportConfig extends SubgraphConfig {
  readonly zendesk: ZendeskConfig | null;
}

const zendesk = ' With `SUPPORT_CONNECTOR=zendesk`.';
const schema = z.object({
  ZENDESK_BASE_URL: httpUrl.optional().describe(`The account's URL (https://<subdomain>.zendesk.com).${zendesk}`),
  ZENDESK_EMAIL: z.string().optional().describe(`The agent the API token belongs to.${zendesk}`),
  ZENDESK_API_TOKEN: z.string().optional().describe(`An API token (with \`ZENDESK_EMAIL\`).${zendesk}`),
  ZENDESK_OAUTH_TOKEN: z.string().optional().describe(`An OAuth access token instead of the API token.${zendesk}`),
  ZENDESK_ORDER_FIELD_ID: z.coerce.number().int().positive().optional().describe(`The ticket field holding the order number.${zendesk}`),
  ZENDESK_SERIAL_FIELD_ID: z.coerce.number().int().positive().optional().describe(`The ticket field holding the serial number.${zendesk}`),
});

/** Zendesk rate-limits per account and minute; a modest bulkhead keeps bursts in check. */
const ZENDESK_POLICY = { maxConcurrent: 8 };

const SUPPORT_SYSTEM: SubgraphSystem = {
  prefix: 'SUPPORT',
  defaultPort: 4003,
  databaseFile: EMBEDDED_DATABASE_FILES.support,
  connectors: ['embedded', 'zendesk'],
};

/** Every variable the support subgraph reads, for the configuration reference. */
export function supportVariables() {
  return [subgraphEnvSchema(SUPPORT_SYSTEM), schema, resilienceEnvSchema('SUPPORT', ZENDESK_POLICY)];
}

/** The support subgraph's configuration, read once from the environment (SUPPORT_PORT, SUPPORT_CONNECTOR, ZENDESK_*, …). */
export function loadSupportConfig(env: NodeJS.ProcessEnv = configuredEnv('support')): SupportConfig {
  const base = loadSubgraphConfig(SUPPORT_SYSTEM, env);
  if (base.connectorKind !== 'zendesk') return Object.freeze({ ...base, zendesk: null });
  const vars = readEnv(schema, env);
  const why = 'with SUPPORT_CONNECTOR=zendesk';
  const auth: ZendeskConfig['auth'] = vars.ZENDESK_OAUTH_TOKEN
    ? { kind: 'bearer', token: vars.ZENDESK_OAUTH_TOKEN }
    : {
        kind: 'token',
        email: required(vars.ZENDESK_EMAIL, 'ZENDESK_EMAIL', `${why} (the agent the API token belongs to), or give ZENDESK_OAUTH_TOKEN`),
        apiToken: required(vars.ZENDESK_API_TOKEN, 'ZENDESK_API_TOKEN', `${why}, or give ZENDESK_OAUTH_TOKEN`),
      };
  return Object.freeze({
    ...base,
    zendesk: Object.freeze({
      baseUrl: required(vars.ZENDESK_BASE_URL, 'ZENDESK_BASE_URL', `${why} (https://<subdomain>.zendesk.com)`),
      auth,
      fieldIds: {
        orderNumber: required(vars.ZENDESK_ORDER_FIELD_ID, 'ZENDESK_ORDER_FIELD_ID', `${why} (the ticket field holding the order number)`),
        serialNumber: required(
          vars.ZENDESK_SERIAL_FIELD_ID,
          'ZENDESK_SERIAL_FIELD_ID',
          `${why} (the ticket field holding the serial number)`,
        ),
      },
      policy: loadResiliencePolicy('SUPPORT', env, ZENDESK_POLICY),
    }),
  });
}
