import { z } from 'zod';
import { feedPollMs } from '../../../platform/events/config.ts';
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
  /** The signing secret of the account's webhook to POST /hooks/zendesk (ZENDESK_WEBHOOK_SECRET); null: no such endpoint. */
  readonly webhookSecret: string | null;
  /** Seconds between reads of the incremental ticket export (ZENDESK_POLL_SECONDS); 0: not read. */
  readonly pollSeconds: number;
}

export interface SupportConfig extends SubgraphConfig {
  readonly zendesk: ZendeskConfig | null;
  /** How often the embedded desk's change log is read, in ms (SUPPORT_FEED_POLL_MS). */
  readonly feedPollMs: number;
}

const zendesk = ' With `SUPPORT_CONNECTOR=zendesk`.';
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
  connectors: ['embedded', 'zendesk'],
};

/** Every variable the support subgraph reads, for the configuration reference. */
export function supportVariables() {
  return [subgraphEnvSchema(SUPPORT_SYSTEM), feedSchema, schema, resilienceEnvSchema('SUPPORT', ZENDESK_POLICY)];
}

/** The support subgraph's configuration, read once from the environment (SUPPORT_PORT, SUPPORT_CONNECTOR, ZENDESK_*, …). */
export function loadSupportConfig(env: NodeJS.ProcessEnv = configuredEnv('support')): SupportConfig {
  const base = { ...loadSubgraphConfig(SUPPORT_SYSTEM, env), feedPollMs: readEnv(feedSchema, env).SUPPORT_FEED_POLL_MS };
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
      webhookSecret: vars.ZENDESK_WEBHOOK_SECRET ?? null,
      pollSeconds: vars.ZENDESK_POLL_SECONDS,
    }),
  });
}
