import { z } from 'zod';
import { readEnv } from '../../../platform/config.ts';
import type { ResiliencePolicy } from '../../../platform/resilience.ts';
import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';
import { httpUrl, loadResiliencePolicy, required } from '../../../platform/vendor-config.ts';

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

const schema = z.object({
  ZENDESK_BASE_URL: httpUrl.optional(),
  ZENDESK_EMAIL: z.string().optional(),
  ZENDESK_API_TOKEN: z.string().optional(),
  ZENDESK_OAUTH_TOKEN: z.string().optional(),
  ZENDESK_ORDER_FIELD_ID: z.coerce.number().int().positive().optional(),
  ZENDESK_SERIAL_FIELD_ID: z.coerce.number().int().positive().optional(),
});

/** The support subgraph's configuration, read once from the environment (SUPPORT_PORT, SUPPORT_CONNECTOR, ZENDESK_*, …). */
export function loadSupportConfig(env: NodeJS.ProcessEnv = process.env): SupportConfig {
  const base = loadSubgraphConfig(
    { prefix: 'SUPPORT', defaultPort: 4003, databaseFile: EMBEDDED_DATABASE_FILES.support, connectors: ['embedded', 'zendesk'] },
    env,
  );
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
      // Zendesk rate-limits per account and minute; a modest bulkhead keeps bursts in check.
      policy: loadResiliencePolicy('SUPPORT', env, { maxConcurrent: 8 }),
    }),
  });
}
