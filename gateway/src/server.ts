import { ApolloGateway, type SupergraphManager } from '@apollo/gateway';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControl } from '@apollo/server/plugin/cacheControl';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import { CLIENT_ERROR_CODES, ErrorCode } from '../../platform/errors.ts';
import { auditLogger, type Logger } from '../../platform/logger.ts';
import { currentScope } from '../../platform/request-context.ts';
import { overrideKey, type OperationLimits } from './config.ts';
import { costLimit } from './cost.ts';
import { ideLandingPage } from './ide.ts';
import { operationLimits } from './limits.ts';
import { operationMetrics, type GatewayMetrics } from './metrics.ts';
import { loggedName, requestGuard } from './request-guard.ts';
import { registeredOperationsOnly, registeredQueryStore, type RegisteredOperations } from './portal.ts';
import type { GatewayContext } from './context.ts';
import { SubgraphDataSource, SubgraphPools, type InternalSigner } from './data-source.ts';
import type { EntityCache } from './cache/entity-cache.ts';
import type { SharedFetches } from './shared-fetches.ts';

export interface GatewayDeps {
  /** A composed Federation 2 supergraph, or a manager that follows one (supergraph-source.ts). */
  readonly supergraph: string | SupergraphManager;
  /** Routing URLs replacing the supergraph's, by subgraph name. */
  readonly subgraphUrls?: Readonly<Record<string, string>>;
  readonly subgraphTimeoutMs: number;
  /** A subgraph answer larger than this is refused (SUBGRAPH_MAX_RESPONSE_MB). */
  readonly subgraphMaxResponseBytes: number;
  readonly logger: Logger;
  /** Signs the internal token each subgraph call carries (null only when measuring without security). */
  readonly signInternal: InternalSigner | null;
  readonly limits: OperationLimits;
  /** production: no introspection, no field suggestions in errors. */
  readonly production: boolean;
  /** The only operations a portal customer may run. */
  readonly portalOperations: RegisteredOperations;
  readonly batching: boolean;
  /** Size bound of the query-plan cache, in MiB. */
  readonly queryPlanCacheMb?: number;
  /** The cache of subgraph answers; null: every fetch goes to the subgraph. */
  readonly cache?: EntityCache | null;
  /** Identical subgraph fetches in flight sent once (the same instance the cache shares through). */
  readonly sharedFetches?: SharedFetches | null;
  /** The cache of whole answers, over the same store (with `cache` only). */
  readonly responseCache?: ApolloServerPlugin<GatewayContext> | null;
  /** Request metrics per operation and per subgraph (metrics.ts); none: not counted. */
  readonly metrics?: GatewayMetrics | null;
  /** Told the API schema each time the supergraph loads or changes (the live subscriptions validate against it). */
  readonly onSchema?: (apiSchema: GraphQLSchema, coreSupergraphSdl: string) => void;
}

/**
 * The gateway's Apollo Server over a static supergraph (no subgraph introspection at run time).
 * Not listening; index.ts serves it.
 */
export function createServer(deps: GatewayDeps): ApolloServer<GatewayContext> {
  const { logger } = deps;
  const pools = new SubgraphPools(deps.subgraphTimeoutMs, deps.subgraphMaxResponseBytes, deps.metrics ?? null);
  const gateway = new ApolloGateway({
    supergraphSdl: deps.supergraph,
    logger,
    // Plans are computed once per operation and kept in an LRU bounded by (approximate) size.
    experimental_approximateQueryPlanStoreMiB: deps.queryPlanCacheMb,
    buildService: ({ name, url }) => {
      const target = deps.subgraphUrls?.[overrideKey(name)] ?? url;
      if (!target) throw new Error(`Subgraph "${name}" has no routing URL`);
      return new SubgraphDataSource(name, target, logger, deps.signInternal, deps.cache ?? null, pools, deps.sharedFetches ?? null);
    },
  });
  const cache = deps.cache;
  if (cache) gateway.onSchemaLoadOrUpdate(({ apiSchema, coreSupergraphSdl }) => cache.setSchema(apiSchema, coreSupergraphSdl));
  if (deps.onSchema) gateway.onSchemaLoadOrUpdate(({ apiSchema, coreSupergraphSdl }) => deps.onSchema!(apiSchema, coreSupergraphSdl));
  const armor = operationLimits(deps.limits).protect();
  return new ApolloServer<GatewayContext>({
    gateway,
    logger,
    csrfPrevention: true,
    // The service stops itself on SIGTERM (platform/http-server.ts drains first, then stops this).
    stopOnTerminationSignals: false,
    introspection: !deps.production,
    allowBatchedHttpRequests: deps.batching,
    includeStacktraceInErrorResponses: false,
    persistedQueries: { cache: registeredQueryStore(deps.portalOperations) as never },
    validationRules: armor.validationRules,
    // graphql's parser counts tokens and stops at the limit; its refusal is a parse error (400).
    parseOptions: { maxTokens: deps.limits.maxTokens },
    formatError: gatewayErrorFormatter(logger, { hideSuggestions: deps.production }),
    plugins: [
      // A browser on GET /graphql: GraphiQL served by the gateway itself in development (ide.ts),
      // no page at all in production (Apollo's default would load one from a CDN).
      deps.production ? ApolloServerPluginLandingPageDisabled() : ideLandingPage<GatewayContext>(),
      requestGuard(),
      ...(armor.plugins as ApolloServerPlugin<GatewayContext>[]),
      costLimit(deps.limits.maxCost) as ApolloServerPlugin<GatewayContext>,
      registeredOperationsOnly(deps.portalOperations),
      // After the checks above (cost, registered operations), which a cached answer must pass too.
      ...(deps.responseCache ? [deps.responseCache] : []),
      // Answers are per caller: no shared cache (a CDN, a proxy) may keep one, whatever the
      // gateway's own cache does with it.
      ApolloServerPluginCacheControl({ calculateHttpHeaders: false }),
      privateNoStore,
      {
        // The subgraph connections end with the server (after requests in flight have drained).
        async serverWillStart() {
          return {
            async serverWillStop() {
              await pools.close();
            },
          };
        },
      },
      auditMutations(logger),
      requestLogPlugin(logger),
      ...(deps.metrics ? [operationMetrics(deps.metrics)] : []),
    ],
  });
}

/**
 * What clients see of an error: its message, path and code, and the system it came from
 * (serviceName). Errors with a code a client can act on pass through; any other error, the
 * gateway's own or a subgraph's, is logged and shown only as an internal error with the
 * correlation id to quote. Never a stack, a subgraph URL or a subgraph's response body.
 */
export function gatewayErrorFormatter(logger: Logger, { hideSuggestions = false }: { hideSuggestions?: boolean } = {}) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const { response: _response, stacktrace: _stacktrace, exception: _exception, ...extensions } = formatted.extensions ?? {};
    // In production no message suggests a name (a field, an argument, an enum value, a type):
    // suggestions would map the schema for a stranger. The sentence goes whole, leaving no marker.
    if (hideSuggestions && / Did you mean /.test(formatted.message))
      formatted = { ...formatted, message: formatted.message.replace(/ Did you mean [\s\S]*$/, '') };
    // A subgraph that failed because a system behind it did not answer names that system
    // (extensions.system): it, not the subgraph that relayed the failure, is the one down.
    if (extensions.code === ErrorCode.SystemUnavailable && typeof extensions.system === 'string')
      extensions.serviceName = extensions.system;
    if (typeof extensions.code === 'string' && CLIENT_ERROR_CODES.has(extensions.code)) return { ...formatted, extensions };
    const serviceName = typeof extensions.serviceName === 'string' ? extensions.serviceName : undefined;
    logger.error({ err: error, path: formatted.path, serviceName, code: extensions.code }, 'unexpected error, masked for the client');
    const correlationId = currentScope()?.correlationId;
    return {
      message: `Internal error${correlationId ? ` (correlation id ${correlationId})` : ''}`,
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: { code: ErrorCode.InternalServerError, ...(serviceName ? { serviceName } : {}) },
    };
  };
}

/** An audit event for every mutation: who, with which roles, what, and the outcome (succeeded, refused with the payload's codes, failed). */
function auditMutations(logger: Logger): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ operation, contextValue, response, request }) {
          if (operation?.operation !== 'mutation') return;
          const errors = response.body.kind === 'single' ? (response.body.singleResult.errors ?? []) : [];
          // A business refusal is an answer, not an error: the payload's `errors` (Concord's mutation convention).
          const data = response.body.kind === 'single' ? response.body.singleResult.data : undefined;
          const refusals = Object.values(data ?? {}).flatMap((payload) =>
            payload && typeof payload === 'object' && Array.isArray((payload as { errors?: unknown }).errors)
              ? (payload as { errors: { code?: unknown }[] }).errors.map((error) =>
                  typeof error?.code === 'string' ? error.code : 'REFUSED',
                )
              : [],
          );
          auditLogger(logger).info(
            {
              audit: true,
              event: 'mutation',
              who: contextValue.identity.subject,
              roles: contextValue.identity.roles,
              customer: contextValue.identity.customerId,
              what:
                loggedName(request.operationName) ??
                operation.selectionSet.selections.map((s) => ('name' in s && s.name ? s.name.value : '?')).join(','),
              outcome: errors.length ? 'failed' : refusals.length ? 'refused' : 'succeeded',
              errors: errors.map((error) => error.extensions?.code),
              ...(refusals.length ? { refusals } : {}),
              correlationId: contextValue.correlationId,
            },
            'audit',
          );
        },
      };
    },
  };
}

const privateNoStore: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        response.http.headers.set('cache-control', 'private, no-store');
      },
    };
  },
};

/** One log line per operation: name, duration, and the systems that failed, if any. */
function requestLogPlugin(logger: Logger): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      const started = performance.now();
      return {
        async willSendResponse({ request, errors, response }) {
          const body = response.body;
          const resultErrors = body.kind === 'single' ? (body.singleResult.errors ?? []) : [];
          const failedSystems = [...new Set(resultErrors.map((e) => e.extensions?.serviceName).filter(Boolean))];
          logger.info(
            {
              operationName: loggedName(request.operationName),
              ms: Math.round((performance.now() - started) * 100) / 100,
              errors: (errors?.length ?? 0) || resultErrors.length,
              ...(failedSystems.length ? { failedSystems } : {}),
            },
            'graphql request',
          );
        },
      };
    },
  };
}
