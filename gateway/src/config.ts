import { hostname } from 'node:os';
import { z } from 'zod';
import {
  ConfigError,
  environment,
  flag,
  host,
  httpUrl,
  logLevel,
  port,
  positiveInt,
  readEnv,
  shutdownGraceMs,
  subgraphTimeoutMs,
  dataDir,
} from '../../platform/config.ts';
import { configuredEnv } from '../../platform/config-file.ts';
import { usableCpus } from '../../platform/cpus.ts';
import { DEV_ISSUER } from '../../platform/dev-token.ts';
import { eventsEnvSchema, loadEventsConfig, type EventsConfig } from '../../platform/events/config.ts';
import { metricsEndpointOf, metricsPort, metricsToken, type MetricsEndpoint } from '../../platform/metrics-endpoint.ts';
import { parseTierTtls, type TierTtls } from './cache/tiers.ts';

/** How client bearer tokens are verified (OAuth 2.0 access tokens, JWT). */
export interface ClientAuthConfig {
  readonly issuer: string;
  readonly audience: string;
  /** Pinned: a token signed with any other algorithm (or none) is refused. */
  readonly algorithms: readonly string[];
  readonly clockToleranceSeconds: number;
  /** After fetching the JWKS, how long before an unknown `kid` may fetch it again. */
  readonly jwksCooldownSeconds: number;
  /** Claim holding the roles (an array, or a space-separated string). */
  readonly rolesClaim: string;
  /** Claim holding a portal customer's customer number. */
  readonly customerClaim: string;
  /** Subjects (service clients) whose tokens may carry the integration role; others lose it. */
  readonly serviceSubjects: readonly string[];
  /** Tokens issued longer ago than this are refused, whatever their expiry. */
  readonly maxTokenAgeSeconds: number;
  /** Where the issuer's keys come from: its JWKS URL, a PEM public key, or the dev key. */
  readonly key: { readonly kind: 'jwks'; readonly url: string } | { readonly kind: 'pem'; readonly pem: string } | { readonly kind: 'dev' };
}

/**
 * Sign-in to the operations console at the identity provider that issues the client tokens
 * (AUTH_ISSUER): OAuth 2.0 authorization code with PKCE, the console a public client there.
 */
export interface ConsoleSignInConfig {
  /** The identity provider's issuer (AUTH_ISSUER); its metadata is found by OpenID Connect discovery. */
  readonly issuer: string;
  readonly clientId: string;
  readonly scope: string;
  /** Sent as `resource` (RFC 8707) at sign-in, when the provider needs it to issue a token for the API. */
  readonly resource: string | null;
}

/** Limits on one operation, checked before it runs (graphql-armor). */
export interface OperationLimits {
  readonly maxDepth: number;
  readonly maxAliases: number;
  readonly maxTokens: number;
  readonly maxCost: number;
  readonly maxDirectives: number;
  /** Fields one document may hold, counted before validation. */
  readonly maxFields: number;
}

export interface GatewayConfig {
  /** production: no dev keys, no introspection, no field suggestions. */
  readonly environment: 'development' | 'production';
  readonly dataDir: string;
  readonly auth: ClientAuthConfig;
  /** The console's sign-in at the identity provider (CONSOLE_OIDC_CLIENT_ID); null: not offered. */
  readonly consoleSignIn: ConsoleSignInConfig | null;
  /** The trace store the console reads traces from (CONSOLE_TRACES_URL, with `{traceId}`); null: no trace timelines. */
  readonly consoleTraces: { readonly url: string; readonly headers: Readonly<Record<string, string>> } | null;
  /** PEM (PKCS #8) of the Ed25519 key internal tokens are signed with; null: the dev key. */
  readonly internalTokenPrivateKey: string | null;
  readonly limits: OperationLimits;
  /** Registered portal operations: the only ones a portal customer may run. */
  readonly portalOperationsDir: string;
  /** Accept arrays of operations in one HTTP request. */
  readonly batching: boolean;
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
  /** A subgraph answer larger than this many bytes is refused while it arrives (SUBGRAPH_MAX_RESPONSE_MB). */
  readonly subgraphMaxResponseBytes: number;
  readonly cache: GatewayCacheConfig;
  /** Worker processes serving the port (GATEWAY_WORKERS; default: the CPUs the process may use, its cgroup quota included). */
  readonly workers: number;
  /** Size bound of the query-plan cache in MiB (QUERY_PLAN_CACHE_MB). */
  readonly queryPlanCacheMb: number;
  /** Where GET /metrics is served (METRICS_PORT, METRICS_TOKEN). */
  readonly metrics: MetricsEndpoint;
  /** How long a stop lets requests in flight finish (SHUTDOWN_GRACE_MS). */
  readonly shutdownGraceMs: number;
  /** Browser origins allowed to call the API (CORS_ORIGINS, comma-separated); empty: CORS off. */
  readonly corsOrigins: ReadonlySet<string>;
  /** The broker the gateway takes change events from (cache invalidation, subscriptions). */
  readonly events: EventsConfig;
  /** This replica's name at the broker: its cache consumer resumes under it after a restart (GATEWAY_REPLICA). */
  readonly replica: string;
  /** Bounds of the live subscriptions (WebSocket and SSE). */
  readonly live: { readonly maxPerConnection: number; readonly maxConnections: number; readonly maxPerSubject: number };
}

/** The gateway's cache of subgraph answers (see cache/entity-cache.ts). */
export interface GatewayCacheConfig {
  readonly store: 'memory' | 'redis' | 'none';
  readonly redisUrl: string | null;
  /** Lifetimes of the policy's tiers, in seconds; `volatile` is the bound on staleness. */
  readonly ttls: TierTtls;
  /** In-memory store: bytes for all cached answers of one process (it lives in the V8 heap). */
  readonly memoryBytes: number;
  /** Deadline of one cache operation; a slower store counts as a miss. */
  readonly timeoutMs: number;
  /** Also cache whole answers (same query, variables and scope), as long as their parts live. */
  readonly wholeAnswers: boolean;
}

const schema = z.object({
  CONCORD_ENV: environment,
  DATA_DIR: dataDir,
  AUTH_ISSUER: z.string().optional().meta({
    description: 'The `iss` client tokens must carry; required with a real key and in production.',
    defaultText: '`concord-dev` (the development issuer, `npm run token`)',
  }),
  AUTH_AUDIENCE: z.string().default('concord').describe('The `aud` client tokens must carry.'),
  AUTH_JWKS_URL: httpUrl.optional().meta({
    description:
      "The issuer's JWKS URL: keys are cached and fetched again for an unknown `kid` (at most every `AUTH_JWKS_COOLDOWN_S`). Give it or `AUTH_PUBLIC_KEY` in production.",
    defaultText: 'the development key in `DATA_DIR`',
  }),
  AUTH_PUBLIC_KEY: z
    .string()
    .includes('PUBLIC KEY', { error: 'must be a PEM public key (SPKI)' })
    .optional()
    .describe("The issuer's PEM public key (RSA, EC or Ed25519), instead of a JWKS URL."),
  AUTH_ALGORITHMS: z
    .string()
    .default('RS256,ES256,EdDSA')
    .transform((value) => value.split(',').map((algorithm) => algorithm.trim()))
    .refine((algorithms) => algorithms.every((algorithm) => /^(RS|PS|ES)(256|384|512)$|^EdDSA$/.test(algorithm)), {
      error: 'must list asymmetric JWS algorithms (RS256, PS256, ES256, EdDSA, …)',
    })
    .meta({
      description:
        'The only signature algorithms accepted, comma-separated; with `AUTH_PUBLIC_KEY`, those of them the key can verify (a key that verifies none stops the start).',
      list: true,
    }),
  AUTH_CLOCK_TOLERANCE_S: z.coerce
    .number()
    .int()
    .min(0)
    .max(300)
    .default(30)
    .describe("Leeway on a token's expiry and not-before, in seconds."),
  AUTH_JWKS_COOLDOWN_S: z.coerce
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(30)
    .describe('After fetching the JWKS, how long before a token with an unknown `kid` may fetch it again, in seconds.'),
  AUTH_ROLES_CLAIM: z.string().min(1).default('roles').describe('The claim holding the roles (an array, or a space-separated string).'),
  AUTH_CUSTOMER_CLAIM: z.string().min(1).default('customer').describe("The claim holding a portal customer's customer number."),
  AUTH_SERVICE_SUBJECTS: z
    .string()
    .default('concord-processes')
    .transform((value) =>
      value
        .split(',')
        .map((subject) => subject.trim())
        .filter(Boolean),
    )
    .meta({
      description:
        'The service clients (token subjects) whose tokens may carry the `integration` role, comma-separated; other tokens lose it.',
      list: true,
    }),
  AUTH_MAX_TOKEN_AGE_S: positiveInt(86_400).describe('Tokens issued longer ago than this many seconds are refused, whatever their expiry.'),
  CONSOLE_OIDC_CLIENT_ID: z.string().min(1).optional().meta({
    description:
      "The operations console's client id at the identity provider of `AUTH_ISSUER` (a public client: authorization code with PKCE, redirect URI `<gateway>/console/callback`); the console then offers sign-in there (docs/console.md).",
    defaultText: 'unset: the console offers no sign-in at the identity provider',
  }),
  CONSOLE_OIDC_SCOPE: z
    .string()
    .regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/, { error: 'must be scope names separated by single spaces' })
    .default('openid')
    .describe('The scope the console asks for when it signs in at the identity provider, space-separated.'),
  CONSOLE_OIDC_RESOURCE: z
    .string()
    .refine((value) => URL.parse(value) !== null && !value.includes('#'), { error: 'must be an absolute URI without a fragment' })
    .optional()
    .meta({
      description:
        'Sent as `resource` (RFC 8707, an absolute URI such as `https://api.concord.example/`) when the console signs in, for an identity provider that issues a JWT access token for `AUTH_AUDIENCE` only when asked for that resource.',
      defaultText: 'unset: no `resource`',
    }),
  INTERNAL_TOKEN_PRIVATE_KEY: z.string().includes('PRIVATE KEY', { error: 'must be a PEM private key (PKCS #8)' }).optional().meta({
    description: 'PEM (PKCS #8) Ed25519 key the gateway signs the token of each subgraph call with. Required in production.',
    defaultText: 'the development key in `DATA_DIR`',
  }),
  LIMIT_MAX_DEPTH: positiveInt(10).describe('Deepest selection one operation may have (docs/security.md).'),
  LIMIT_MAX_ALIASES: positiveInt(15).describe('Aliases one operation may use.'),
  LIMIT_MAX_TOKENS: positiveInt(2_000).describe('Tokens one document may hold (refused while it is parsed).'),
  LIMIT_MAX_COST: positiveInt(20_000).describe('Largest estimated cost of one operation, from the page sizes its resolvers really use.'),
  LIMIT_MAX_DIRECTIVES: positiveInt(20).describe('Directives one operation may use.'),
  LIMIT_MAX_FIELDS: positiveInt(500).describe('Fields one document may hold, counted before validation.'),
  PORTAL_OPERATIONS_DIR: z
    .string()
    .default('schema/operations/portal')
    .describe('The registered operations: the only ones a portal customer may run.'),
  GATEWAY_BATCHING: flag(false).describe('Accept arrays of operations in one HTTP request.'),
  GATEWAY_PORT: port(4000).describe(
    'Port of the graph (POST /graphql, subscriptions over WebSocket at /graphql and SSE at /graphql/stream, /health, /ready).',
  ),
  HOST: host,
  LOG_LEVEL: logLevel,
  SUPERGRAPH_PATH: z.string().default('schema/supergraph.graphql').describe('The composed supergraph to serve.'),
  SUPERGRAPH_URL: httpUrl.optional().describe('Poll this URL for the supergraph instead of reading the file.'),
  SUPERGRAPH_WATCH: flag(false).describe('Follow changes to the supergraph file (or URL) and switch to a new one that validates.'),
  SUPERGRAPH_POLL_INTERVAL_MS: positiveInt(2_000).describe('How often the supergraph is looked at for changes, in ms.'),
  SUBGRAPH_TIMEOUT_MS: subgraphTimeoutMs,
  SUBGRAPH_MAX_RESPONSE_MB: positiveInt(8).describe(
    "A subgraph answer larger than this many MiB is refused while it arrives (that system's fields fail with `RESPONSE_TOO_LARGE`).",
  ),
  CACHE_STORE: z
    .enum(['memory', 'redis', 'none'])
    .default('memory')
    .describe(
      "The gateway's cache of subgraph answers: in each process's `memory`, in `redis` (shared by replicas), or `none` (docs/caching.md).",
    ),
  CACHE_REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, { error: 'must be a redis:// or rediss:// URL' })
    .optional()
    .describe('The Redis server of `CACHE_STORE=redis` (redis:// or rediss://).'),
  CACHE_TTL: z
    .string()
    .optional()
    .transform((value, context) => {
      try {
        return parseTierTtls(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    })
    .meta({
      description: 'Cache lifetimes in seconds by tier; `volatile` bounds how stale a case status or a balance may be (docs/caching.md).',
      defaultText: '`reference=3600,profile=600,record=300,volatile=5`',
    }),
  CACHE_MEMORY_MB: positiveInt(48).describe('In-memory cache of one process, in MiB (it lives in the V8 heap).'),
  CACHE_TIMEOUT_MS: positiveInt(100).describe('Deadline of one cache operation, in ms: a slower store counts as a miss.'),
  CACHE_WHOLE_ANSWERS: flag(true).describe(
    'Also cache whole answers per query, variables and caller scope, for as long as their shortest-lived part.',
  ),
  GATEWAY_WORKERS: z.coerce.number().int().min(1).max(256).optional().meta({
    description: 'Worker processes sharing the port; one per container is recommended (docs/caching.md).',
    defaultText: 'the CPUs the process may use (its cgroup quota included)',
  }),
  QUERY_PLAN_CACHE_MB: positiveInt(30).describe('Size bound of the query-plan cache, in MiB (plans are computed once per operation).'),
  METRICS_PORT: metricsPort.meta({
    description: 'Serve `GET /metrics` on this port only, not on the API port; with workers, the primary serves it for all of them.',
    defaultText: `unset: the API port; \`${9400}\` in production`,
  }),
  METRICS_TOKEN: metricsToken,
  SHUTDOWN_GRACE_MS: shutdownGraceMs,
  LIVE_MAX_SUBSCRIPTIONS: positiveInt(20).describe(
    'Subscriptions one WebSocket connection may hold at once; one more is refused with `TOO_MANY_SUBSCRIPTIONS`.',
  ),
  LIVE_MAX_CONNECTIONS: positiveInt(5_000).describe(
    'Live connections (WebSocket and Server-Sent Events) one gateway process holds at once; past it a new one is refused (WebSocket close 4403, SSE 503).',
  ),
  LIVE_MAX_CONNECTIONS_PER_SUBJECT: positiveInt(50).describe(
    'Live connections one identity (the token subject) holds at once in one gateway process; past it a new one is refused like one past `LIVE_MAX_CONNECTIONS`, so one client cannot take them all.',
  ),
  GATEWAY_REPLICA: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,100}$/, 'must be letters, digits, - and _ (at most 100)')
    .optional()
    .meta({
      description:
        "This replica's name at the event broker: its cache consumer resumes under it, so a replica restarted under the same name drops what changed while it was down. Give each replica its own.",
      defaultText: '`<hostname>-<GATEWAY_PORT>`',
    }),
  CORS_ORIGINS: z
    .string()
    .transform((text, context) => {
      const origins = text
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean);
      for (const origin of origins) {
        let parsed: URL | undefined;
        try {
          parsed = new URL(origin);
        } catch {
          parsed = undefined;
        }
        // An origin is exactly scheme://host[:port]: no path, no wildcard, as browsers send it.
        if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin || origin.includes('*')) {
          context.addIssue({
            code: 'custom',
            message: `each entry must be an origin such as https://portal.example.com (not ${JSON.stringify(origin)})`,
          });
          return z.NEVER;
        }
      }
      return new Set(origins);
    })
    .optional()
    .meta({
      description: 'Origins whose browser pages may call `/graphql`, comma-separated, exactly as browsers send them (docs/security.md).',
      defaultText: 'unset: CORS off',
      list: true,
    }),
  CONSOLE_TRACES_URL: httpUrl
    .refine((value) => value.includes('{traceId}'), { error: 'must contain {traceId}, where the trace id goes' })
    .optional()
    .meta({
      description:
        "The trace store's URL for one trace, `{traceId}` where the id goes, answering OTLP JSON: Grafana Tempo `http://tempo:3200/api/v2/traces/{traceId}`, Jaeger `http://jaeger:16686/api/v3/traces/{traceId}`. The operations console then draws any workflow's or request's trace as a timeline (docs/console.md).",
      defaultText: 'unset: the console shows no traces',
    }),
  CONSOLE_TRACES_HEADERS: z
    .string()
    .transform((text, context) => {
      const headers: Record<string, string> = {};
      for (const part of text.split(',').filter((entry) => entry.trim())) {
        const at = part.indexOf('=');
        const name = at > 0 ? part.slice(0, at).trim().toLowerCase() : '';
        if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
          context.addIssue({ code: 'custom', message: 'must be name=value pairs, comma-separated' });
          return z.NEVER;
        }
        headers[name] = decodeURIComponent(part.slice(at + 1).trim());
      }
      return headers;
    })
    .optional()
    .meta({
      description:
        'Headers sent to the trace store with each request, `name=value` comma-separated as in `OTEL_EXPORTER_OTLP_HEADERS` (values URL-encoded), e.g. `x-scope-orgid=ops` for a multi-tenant Tempo.',
      defaultText: 'none',
    }),
});

/** SUBGRAPH_<NAME>_URL, a family of variables named by pattern, for the configuration reference. */
export const SUBGRAPH_URL_VARIABLES = {
  name: 'SUBGRAPH_<NAME>_URL',
  pattern: '^SUBGRAPH_[A-Z][A-Z0-9_]*_URL$',
  description:
    'Routes the subgraph `<name>` to this URL instead of the one in the supergraph, e.g. `SUBGRAPH_CRM_URL=http://crm:4001/graphql`.',
  defaultText: 'the URL in the supergraph',
} as const;

/** Every variable the gateway reads (besides SUBGRAPH_<NAME>_URL), for the configuration reference. */
export function gatewayVariables() {
  return [schema, eventsEnvSchema];
}

/** The gateway's metrics port in production when METRICS_PORT is not given. */
export const PRODUCTION_METRICS_PORT = 9400;

const SUBGRAPH_URL_VARIABLE = /^SUBGRAPH_([A-Z][A-Z0-9_]*)_URL$/;

/** The gateway's configuration, read once from the environment. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = configuredEnv('gateway')): GatewayConfig {
  const vars = readEnv(schema, env);
  const production = vars.CONCORD_ENV === 'production';
  const problems: string[] = [];
  if (vars.AUTH_JWKS_URL && vars.AUTH_PUBLIC_KEY) problems.push('AUTH_JWKS_URL, AUTH_PUBLIC_KEY: give one of them, not both');
  if (production && !vars.AUTH_JWKS_URL && !vars.AUTH_PUBLIC_KEY)
    problems.push('AUTH_JWKS_URL: required when CONCORD_ENV=production (or AUTH_PUBLIC_KEY)');
  if (production && !vars.AUTH_ISSUER) problems.push('AUTH_ISSUER: required when CONCORD_ENV=production');
  if (production && !vars.INTERNAL_TOKEN_PRIVATE_KEY) problems.push('INTERNAL_TOKEN_PRIVATE_KEY: required when CONCORD_ENV=production');
  if ((vars.AUTH_JWKS_URL || vars.AUTH_PUBLIC_KEY) && !vars.AUTH_ISSUER)
    problems.push('AUTH_ISSUER: required with AUTH_JWKS_URL or AUTH_PUBLIC_KEY');
  if (vars.CONSOLE_OIDC_CLIENT_ID) {
    // The page finds the provider by discovery at AUTH_ISSUER; over http only off production.
    const protocol = URL.parse(vars.AUTH_ISSUER ?? '')?.protocol;
    const reachable = protocol === 'https:' || (!production && protocol === 'http:');
    if (!reachable || !(vars.AUTH_JWKS_URL || vars.AUTH_PUBLIC_KEY))
      problems.push(
        `CONSOLE_OIDC_CLIENT_ID: needs AUTH_ISSUER to be the identity provider's URL (${production ? 'https' : 'http(s)'}), with AUTH_JWKS_URL or AUTH_PUBLIC_KEY`,
      );
  }
  if (vars.CACHE_STORE === 'redis' && !vars.CACHE_REDIS_URL) problems.push('CACHE_REDIS_URL: required with CACHE_STORE=redis');
  if (problems.length) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  const key: ClientAuthConfig['key'] = vars.AUTH_JWKS_URL
    ? { kind: 'jwks', url: vars.AUTH_JWKS_URL }
    : vars.AUTH_PUBLIC_KEY
      ? { kind: 'pem', pem: vars.AUTH_PUBLIC_KEY }
      : { kind: 'dev' };
  return Object.freeze({
    environment: vars.CONCORD_ENV,
    dataDir: vars.DATA_DIR,
    auth: Object.freeze({
      issuer: vars.AUTH_ISSUER ?? DEV_ISSUER,
      audience: vars.AUTH_AUDIENCE,
      // The dev issuer signs with Ed25519 only.
      algorithms: key.kind === 'dev' ? ['EdDSA'] : vars.AUTH_ALGORITHMS,
      clockToleranceSeconds: vars.AUTH_CLOCK_TOLERANCE_S,
      jwksCooldownSeconds: vars.AUTH_JWKS_COOLDOWN_S,
      rolesClaim: vars.AUTH_ROLES_CLAIM,
      customerClaim: vars.AUTH_CUSTOMER_CLAIM,
      serviceSubjects: vars.AUTH_SERVICE_SUBJECTS,
      maxTokenAgeSeconds: vars.AUTH_MAX_TOKEN_AGE_S,
      key,
    }),
    consoleTraces: vars.CONSOLE_TRACES_URL
      ? Object.freeze({ url: vars.CONSOLE_TRACES_URL, headers: Object.freeze(vars.CONSOLE_TRACES_HEADERS ?? {}) })
      : null,
    consoleSignIn: vars.CONSOLE_OIDC_CLIENT_ID
      ? Object.freeze({
          issuer: vars.AUTH_ISSUER!,
          clientId: vars.CONSOLE_OIDC_CLIENT_ID,
          scope: vars.CONSOLE_OIDC_SCOPE,
          resource: vars.CONSOLE_OIDC_RESOURCE ?? null,
        })
      : null,
    internalTokenPrivateKey: vars.INTERNAL_TOKEN_PRIVATE_KEY ?? null,
    limits: Object.freeze({
      maxDepth: vars.LIMIT_MAX_DEPTH,
      maxAliases: vars.LIMIT_MAX_ALIASES,
      maxTokens: vars.LIMIT_MAX_TOKENS,
      maxCost: vars.LIMIT_MAX_COST,
      maxDirectives: vars.LIMIT_MAX_DIRECTIVES,
      maxFields: vars.LIMIT_MAX_FIELDS,
    }),
    portalOperationsDir: vars.PORTAL_OPERATIONS_DIR,
    batching: vars.GATEWAY_BATCHING,
    host: vars.HOST,
    port: vars.GATEWAY_PORT,
    logLevel: vars.LOG_LEVEL,
    supergraphPath: vars.SUPERGRAPH_PATH,
    supergraphUrl: vars.SUPERGRAPH_URL ?? null,
    supergraphWatch: vars.SUPERGRAPH_WATCH,
    supergraphPollIntervalMs: vars.SUPERGRAPH_POLL_INTERVAL_MS,
    subgraphUrls: Object.freeze(subgraphUrlOverrides(env)),
    subgraphTimeoutMs: vars.SUBGRAPH_TIMEOUT_MS,
    subgraphMaxResponseBytes: vars.SUBGRAPH_MAX_RESPONSE_MB * 1024 * 1024,
    cache: Object.freeze({
      store: vars.CACHE_STORE,
      redisUrl: vars.CACHE_REDIS_URL ?? null,
      ttls: Object.freeze(vars.CACHE_TTL),
      memoryBytes: vars.CACHE_MEMORY_MB * 1024 * 1024,
      timeoutMs: vars.CACHE_TIMEOUT_MS,
      wholeAnswers: vars.CACHE_WHOLE_ANSWERS,
    }),
    workers: vars.GATEWAY_WORKERS ?? usableCpus(),
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS,
    corsOrigins: vars.CORS_ORIGINS ?? new Set<string>(),
    events: loadEventsConfig(env, vars.DATA_DIR, production),
    live: Object.freeze({
      maxPerConnection: vars.LIVE_MAX_SUBSCRIPTIONS,
      maxConnections: vars.LIVE_MAX_CONNECTIONS,
      maxPerSubject: vars.LIVE_MAX_CONNECTIONS_PER_SUBJECT,
    }),
    replica:
      vars.GATEWAY_REPLICA ??
      `${hostname()
        .replace(/[^A-Za-z0-9_-]/g, '_')
        .slice(0, 80)}-${vars.GATEWAY_PORT}`,
    queryPlanCacheMb: vars.QUERY_PLAN_CACHE_MB,
    metrics: metricsEndpointOf({
      port: vars.METRICS_PORT,
      token: vars.METRICS_TOKEN,
      production,
      productionPort: PRODUCTION_METRICS_PORT,
      portVariable: 'METRICS_PORT',
      apiPort: vars.GATEWAY_PORT,
      apiPortVariable: 'GATEWAY_PORT',
    }),
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
