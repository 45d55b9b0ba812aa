import { z } from 'zod';
import { feedPollMs } from '../../../platform/events/config.ts';
import { readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { configuredEnv } from '../../../platform/config-file.ts';
import { loadSubgraphConfig, subgraphEnvSchema, type SubgraphConfig, type SubgraphSystem } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';
import { httpUrl, loadResiliencePolicy, required, resilienceEnvSchema, type TokenConfig } from '../../../platform/vendor-config.ts';

/** Connecting to a real Zendesk account (SUPPORT_CONNECTOR=zendesk). */
export interface ZendeskConfig {
  readonly baseUrl: string;
  readonly auth:
    { readonly kind: 'token'; readonly email: string; readonly apiToken: string } | { readonly kind: 'bearer'; readonly token: string };
  /** The account's ticket fields that hold the order number and the serial number. */
  readonly fieldIds: { readonly orderNumber: number; readonly serialNumber: number };
  readonly policy: ResiliencePolicy;
  /** The signing secret of the account's webhook to POST /hooks/zendesk (ZENDESK_WEBHOOK_SECRET); null: no such endpoint. */
  readonly webhookSecret: string | null;
  /** Seconds between reads of the incremental ticket export (ZENDESK_POLL_SECONDS); 0: not read. */
  readonly pollSeconds: number;
}

/** Connecting to a real ServiceNow instance (SUPPORT_CONNECTOR=servicenow). */
export interface ServiceNowConfig {
  readonly baseUrl: string;
  /** Basic auth of an integration user, or OAuth access tokens (fixed, or client credentials at the instance's /oauth_token.do). */
  readonly auth:
    { readonly kind: 'basic'; readonly user: string; readonly password: string } | { readonly kind: 'oauth'; readonly token: TokenConfig };
  readonly policy: ResiliencePolicy;
}

export interface SupportConfig extends SubgraphConfig {
  readonly zendesk: ZendeskConfig | null;
  readonly servicenow: ServiceNowConfig | null;
  /** How often the embedded desk's change log is read, in ms (SUPPORT_FEED_POLL_MS). */
  readonly feedPollMs: number;
}

const zendesk = ' With `SUPPORT_CONNECTOR=zendesk`.';
const servicenow = ' With `SUPPORT_CONNECTOR=servicenow`.';

const servicenowSchema = z.object({
  SERVICENOW_BASE_URL: httpUrl.optional().describe(`The instance's URL (https://<instance>.service-now.com).${servicenow}`),
  SERVICENOW_USER: z.string().optional().describe(`The integration user (basic auth, with \`SERVICENOW_PASSWORD\`).${servicenow}`),
  SERVICENOW_PASSWORD: z.string().optional().describe(`Its password.${servicenow}`),
  SERVICENOW_CLIENT_ID: z
    .string()
    .optional()
    .describe(
      `An OAuth application's client id (client credentials at the instance's \`/oauth_token.do\`), instead of basic auth.${servicenow}`,
    ),
  SERVICENOW_CLIENT_SECRET: z.string().optional().describe(`Its client secret.${servicenow}`),
  SERVICENOW_ACCESS_TOKEN: z
    .string()
    .optional()
    .describe(`A fixed OAuth access token instead of basic auth or client credentials.${servicenow}`),
});
const schema = z.object({
  ZENDESK_BASE_URL: httpUrl.optional().describe(`The account's URL (https://<subdomain>.zendesk.com).${zendesk}`),
  ZENDESK_EMAIL: z.string().optional().describe(`The agent the API token belongs to.${zendesk}`),
  ZENDESK_API_TOKEN: z.string().optional().describe(`An API token (with \`ZENDESK_EMAIL\`).${zendesk}`),
  ZENDESK_OAUTH_TOKEN: z.string().optional().describe(`An OAuth access token instead of the API token.${zendesk}`),
  ZENDESK_ORDER_FIELD_ID: z.coerce.number().int().positive().optional().describe(`The ticket field holding the order number.${zendesk}`),
  ZENDESK_SERIAL_FIELD_ID: z.coerce.number().int().positive().optional().describe(`The ticket field holding the serial number.${zendesk}`),
  ZENDESK_WEBHOOK_SECRET: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .meta({
      description: `Signing secret of the Zendesk webhook that sends ticket and organization events to the support subgraph's \`POST /hooks/zendesk\`, which turns them into canonical change events (\`concord.case.updated\`, …); a notice unsigned, wrongly signed or older than 5 minutes is refused.${zendesk}`,
      defaultText: 'unset: the endpoint is off',
    }),
  ZENDESK_POLL_SECONDS: z.coerce
    .number({ error: 'must be a number of seconds' })
    .int('must be a whole number of seconds')
    .min(0, 'must be 0 (off) or more')
    .max(3_600, 'must be at most 3600')
    .default(0)
    .describe(
      `Seconds between reads of Zendesk's incremental ticket export, which publishes the changes whose webhooks were lost (at most 10 requests a minute, Zendesk's limit on that endpoint; its cursor is kept in \`DATA_DIR/support-feed.sqlite\`). 0: off.${zendesk}`,
    ),
});

/** The change feed of the embedded desk, whichever connector is configured (only the embedded one reads it). */
const feedSchema = z.object({
  SUPPORT_FEED_POLL_MS: feedPollMs('desk'),
});

/** Zendesk rate-limits per account and minute; a modest bulkhead keeps bursts in check. */
const ZENDESK_POLICY = { maxConcurrent: 8 };

const SUPPORT_SYSTEM: SubgraphSystem = {
  prefix: 'SUPPORT',
  defaultPort: 4003,
  databaseFile: EMBEDDED_DATABASE_FILES.support,
  connectors: ['embedded', 'zendesk', 'servicenow'],
};

/** Every variable the support subgraph reads, for the configuration reference. */
export function supportVariables() {
  return [subgraphEnvSchema(SUPPORT_SYSTEM), feedSchema, schema, servicenowSchema, resilienceEnvSchema('SUPPORT', ZENDESK_POLICY)];
}

/** The support subgraph's configuration, read once from the environment (SUPPORT_PORT, SUPPORT_CONNECTOR, ZENDESK_*, …). */
export function loadSupportConfig(env: NodeJS.ProcessEnv = configuredEnv('support')): SupportConfig {
  const base = { ...loadSubgraphConfig(SUPPORT_SYSTEM, env), feedPollMs: readEnv(feedSchema, env).SUPPORT_FEED_POLL_MS };
  if (base.connectorKind === 'servicenow') return Object.freeze({ ...base, zendesk: null, servicenow: loadServiceNow(env) });
  if (base.connectorKind !== 'zendesk') return Object.freeze({ ...base, zendesk: null, servicenow: null });
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
    servicenow: null,
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
      webhookSecret: vars.ZENDESK_WEBHOOK_SECRET ?? null,
      pollSeconds: vars.ZENDESK_POLL_SECONDS,
    }),
  });
}

function loadServiceNow(env: NodeJS.ProcessEnv): ServiceNowConfig {
  const vars = readEnv(servicenowSchema, env);
  const why = 'with SUPPORT_CONNECTOR=servicenow';
  const baseUrl = required(vars.SERVICENOW_BASE_URL, 'SERVICENOW_BASE_URL', `${why} (https://<instance>.service-now.com)`);
  const auth: ServiceNowConfig['auth'] = vars.SERVICENOW_ACCESS_TOKEN
    ? { kind: 'oauth', token: { kind: 'static', token: vars.SERVICENOW_ACCESS_TOKEN } }
    : vars.SERVICENOW_CLIENT_ID
      ? {
          kind: 'oauth',
          token: {
            kind: 'client_credentials',
            tokenUrl: `${baseUrl.replace(/\/+$/, '')}/oauth_token.do`,
            clientId: vars.SERVICENOW_CLIENT_ID,
            clientSecret: required(vars.SERVICENOW_CLIENT_SECRET, 'SERVICENOW_CLIENT_SECRET', `${why} and SERVICENOW_CLIENT_ID`),
          },
        }
      : {
          kind: 'basic',
          user: required(
            vars.SERVICENOW_USER,
            'SERVICENOW_USER',
            `${why} (the integration user), or give SERVICENOW_CLIENT_ID or SERVICENOW_ACCESS_TOKEN`,
          ),
          password: required(vars.SERVICENOW_PASSWORD, 'SERVICENOW_PASSWORD', `${why} with SERVICENOW_USER`),
        };
  return Object.freeze({ baseUrl, auth, policy: loadResiliencePolicy('SUPPORT', env, ZENDESK_POLICY) });
}
