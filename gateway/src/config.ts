import { z } from 'zod';
import { ConfigError, flag, host, httpUrl, logLevel, port, positiveInt, readEnv } from '../../platform/config.ts';

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof logLevel>;
  /** The composed supergraph to serve (schema/supergraph.graphql by default). */
  readonly supergraphPath: string;
  /** Poll this URL for the supergraph instead of reading the file. */
  readonly supergraphUrl: string | null;
  /** Follow changes to the supergraph file (or URL) and switch to a new one that validates. */
  readonly supergraphWatch: boolean;
  readonly supergraphPollIntervalMs: number;
  /** Routing URLs that replace the supergraph's, by subgraph name (SUBGRAPH_<NAME>_URL). */
  readonly subgraphUrls: Readonly<Record<string, string>>;
  /** How long one subgraph call may take before that system's part of the answer is given up. */
  readonly subgraphTimeoutMs: number;
}

const schema = z.object({
  GATEWAY_PORT: port(4000),
  HOST: host,
  LOG_LEVEL: logLevel,
  SUPERGRAPH_PATH: z.string().default('schema/supergraph.graphql'),
  SUPERGRAPH_URL: httpUrl.optional(),
  SUPERGRAPH_WATCH: flag(false),
  SUPERGRAPH_POLL_INTERVAL_MS: positiveInt(2_000),
  SUBGRAPH_TIMEOUT_MS: positiveInt(10_000),
});

const SUBGRAPH_URL_VARIABLE = /^SUBGRAPH_([A-Z][A-Z0-9_]*)_URL$/;

/** The gateway's configuration, read once from the environment. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const vars = readEnv(schema, env);
  return Object.freeze({
    host: vars.HOST,
    port: vars.GATEWAY_PORT,
    logLevel: vars.LOG_LEVEL,
    supergraphPath: vars.SUPERGRAPH_PATH,
    supergraphUrl: vars.SUPERGRAPH_URL ?? null,
    supergraphWatch: vars.SUPERGRAPH_WATCH,
    supergraphPollIntervalMs: vars.SUPERGRAPH_POLL_INTERVAL_MS,
    subgraphUrls: Object.freeze(subgraphUrlOverrides(env)),
    subgraphTimeoutMs: vars.SUBGRAPH_TIMEOUT_MS,
  });
}

/**
 * The name a subgraph has in SUBGRAPH_<NAME>_URL: upper-cased, '-' as '_'. Overrides are kept
 * under the lower-cased form of that name.
 */
export function overrideKey(subgraphName: string): string {
  return subgraphName.toLowerCase().replace(/-/g, '_');
}

/**
 * Checks that every SUBGRAPH_<NAME>_URL names a subgraph of the supergraph, so a typo
 * (SUBGRAPH_CMR_URL) stops start-up instead of leaving traffic on the default URL.
 */
export function checkSubgraphOverrides(urls: Readonly<Record<string, string>>, subgraphNames: readonly string[]): void {
  const known = new Set(subgraphNames.map(overrideKey));
  const unknown = Object.keys(urls).filter((key) => !known.has(key));
  if (unknown.length) {
    const names = subgraphNames.join(', ');
    throw new ConfigError(
      `Invalid configuration:\n${unknown.map((key) => `  SUBGRAPH_${key.toUpperCase()}_URL: the supergraph has no subgraph "${key}" (it has ${names})`).join('\n')}`,
    );
  }
}

/** SUBGRAPH_CRM_URL=http://crm:4001/graphql routes the subgraph named "crm" there. */
function subgraphUrlOverrides(env: NodeJS.ProcessEnv): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    const match = SUBGRAPH_URL_VARIABLE.exec(name);
    if (!match?.[1] || !value) continue;
    const parsed = httpUrl.safeParse(value);
    if (!parsed.success) throw new ConfigError(`Invalid configuration:\n  ${name}: must be an http(s) URL (got ${JSON.stringify(value)})`);
    urls[match[1].toLowerCase()] = parsed.data;
  }
  return urls;
}
