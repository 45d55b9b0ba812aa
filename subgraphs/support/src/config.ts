import { z } from 'zod';
import { feedPollMs } from '../../../platform/events/config.ts';
import { readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { configuredEnv } from '../../../platform/config-file.ts';
import { loadSubgraphConfig, subgraphEnvSchema, type SubgraphConfig, type SubgraphSystem } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';
import type { CaseStatus, SupportTier } from './connectors/types.ts';
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

/** Connecting to a real Freshdesk account (SUPPORT_CONNECTOR=freshdesk). */
export interface FreshdeskConfig {
  readonly baseUrl: string;
  readonly apiKey: string;
  /** The account's custom statuses (ids from 6 up) and the canonical status each stands for. */
  readonly customStatuses: Readonly<Record<number, CaseStatus>>;
  /** The SLA policy id of each support tier. */
  readonly slaPolicyIds: Readonly<Partial<Record<SupportTier, number>>>;
  /** The custom objects (schema name or id) of the installed base and the entitlements. */
  readonly customObjects: { readonly installedBase: string; readonly entitlements: string };
  readonly policy: ResiliencePolicy;
}

export interface SupportConfig extends SubgraphConfig {
  readonly zendesk: ZendeskConfig | null;
  readonly servicenow: ServiceNowConfig | null;
  readonly freshdesk: FreshdeskConfig | null;
  /** How often the embedded desk's change log is read, in ms (SUPPORT_FEED_POLL_MS). */
  readonly feedPollMs: number;
}

const zendesk = ' With `SUPPORT_CONNECTOR=zendesk`.';
const servicenow = ' With `SUPPORT_CONNECTOR=servicenow`.';
const freshdesk = ' With `SUPPORT_CONNECTOR=freshdesk`.';

const CASE_STATUSES: readonly CaseStatus[] = ['NEW', 'OPEN', 'PENDING', 'ON_HOLD', 'SOLVED', 'CLOSED'];
const TIERS: readonly SupportTier[] = ['BASIC', 'STANDARD', 'PREMIUM'];

/** `key=VALUE,key=VALUE` pairs, each key a positive integer (or a tier), each value one of `values`. */
function pairList<K extends string | number, V extends string | number>(
  parseKey: (text: string) => K | null,
  parseValue: (text: string) => V | null,
  example: string,
) {
  return z
    .string()
    .optional()
    .transform((text, ctx) => {
      const pairs: [K, V][] = [];
      for (const part of (text ?? '')
        .split(',')
        .map((entry) => entry.trim())
        .filter(Boolean)) {
        const [rawKey = '', rawValue = '', ...rest] = part.split('=').map((piece) => piece.trim());
        const key = parseKey(rawKey);
        const value = parseValue(rawValue);
        if (key === null || value === null || rest.length > 0) {
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(part)} is not of the form ${example}` });
          return z.NEVER;
        }
        pairs.push([key, value]);
      }
      return pairs;
    });
}
const positiveId = (text: string) => (/^[1-9]\d*$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : null);
const statusOf = (text: string) => CASE_STATUSES.find((status) => status === text.toUpperCase()) ?? null;
const tierOf = (text: string) => TIERS.find((tier) => tier === text.toUpperCase()) ?? null;

const freshdeskSchema = z.object({
  FRESHDESK_DOMAIN: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/i, 'must be the account name (acme for https://acme.freshdesk.com)')
    .optional()
    .describe(`The account's name: https://<FRESHDESK_DOMAIN>.freshdesk.com (or give \`FRESHDESK_BASE_URL\`).${freshdesk}`),
  FRESHDESK_BASE_URL: httpUrl.optional().describe(`The account's URL, instead of \`FRESHDESK_DOMAIN\` (a custom domain).${freshdesk}`),
  FRESHDESK_API_KEY: z.string().optional().describe(`An agent's API key (sent as basic auth \`<key>:X\`).${freshdesk}`),
  FRESHDESK_CUSTOM_STATUSES: pairList(positiveId, statusOf, '6=NEW').meta({
    description: `The account's custom statuses and the canonical status each stands for, e.g. \`6=NEW,7=ON_HOLD\` (a custom status not named reads as OPEN; a status without one is written as Open or Pending).${freshdesk}`,
    defaultText: 'none',
  }),
  FRESHDESK_SLA_POLICY_IDS: pairList(tierOf, positiveId, 'PREMIUM=3').meta({
    description: `The SLA policy of each support tier, e.g. \`BASIC=1,STANDARD=2,PREMIUM=3\` (a tier not named has none).${freshdesk}`,
    defaultText: 'none',
  }),
  FRESHDESK_INSTALLED_BASE_OBJECT: z
    .string()
    .min(1)
    .default('installed_product')
    .describe(`The custom object (schema name or id) holding the installed base.${freshdesk}`),
  FRESHDESK_ENTITLEMENT_OBJECT: z
    .string()
    .min(1)
    .default('entitlement')
    .describe(`The custom object (schema name or id) holding the entitlements.${freshdesk}`),
});

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
  connectors: ['embedded', 'zendesk', 'servicenow', 'freshdesk'],
};

/** Every variable the support subgraph reads, for the configuration reference. */
export function supportVariables() {
  return [
    subgraphEnvSchema(SUPPORT_SYSTEM),
    feedSchema,
    schema,
    servicenowSchema,
    freshdeskSchema,
    resilienceEnvSchema('SUPPORT', ZENDESK_POLICY),
  ];
}

/** The support subgraph's configuration, read once from the environment (SUPPORT_PORT, SUPPORT_CONNECTOR, ZENDESK_*, …). */
export function loadSupportConfig(env: NodeJS.ProcessEnv = configuredEnv('support')): SupportConfig {
  const base = { ...loadSubgraphConfig(SUPPORT_SYSTEM, env), feedPollMs: readEnv(feedSchema, env).SUPPORT_FEED_POLL_MS };
  if (base.connectorKind === 'servicenow')
    return Object.freeze({ ...base, zendesk: null, freshdesk: null, servicenow: loadServiceNow(env) });
  if (base.connectorKind === 'freshdesk') return Object.freeze({ ...base, zendesk: null, servicenow: null, freshdesk: loadFreshdesk(env) });
  if (base.connectorKind !== 'zendesk') return Object.freeze({ ...base, zendesk: null, servicenow: null, freshdesk: null });
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
    freshdesk: null,
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

function loadFreshdesk(env: NodeJS.ProcessEnv): FreshdeskConfig {
  const vars = readEnv(freshdeskSchema, env);
  const why = 'with SUPPORT_CONNECTOR=freshdesk';
  const baseUrl =
    vars.FRESHDESK_BASE_URL ??
    (vars.FRESHDESK_DOMAIN
      ? `https://${vars.FRESHDESK_DOMAIN.toLowerCase()}.freshdesk.com`
      : required(vars.FRESHDESK_DOMAIN, 'FRESHDESK_DOMAIN', `${why} (acme for https://acme.freshdesk.com), or give FRESHDESK_BASE_URL`));
  return Object.freeze({
    baseUrl,
    apiKey: required(vars.FRESHDESK_API_KEY, 'FRESHDESK_API_KEY', `${why} (an agent's API key)`),
    customStatuses: Object.freeze(Object.fromEntries(vars.FRESHDESK_CUSTOM_STATUSES)),
    slaPolicyIds: Object.freeze(Object.fromEntries(vars.FRESHDESK_SLA_POLICY_IDS)),
    customObjects: Object.freeze({ installedBase: vars.FRESHDESK_INSTALLED_BASE_OBJECT, entitlements: vars.FRESHDESK_ENTITLEMENT_OBJECT }),
    policy: loadResiliencePolicy('SUPPORT', env, ZENDESK_POLICY),
  });
}
