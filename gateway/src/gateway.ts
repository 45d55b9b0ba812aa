import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import type { CryptoKey } from 'jose';
import { createCacheStore } from '../../platform/cache.ts';
import { startService, type RunningService } from '../../platform/http-server.ts';
import type { Identity } from '../../platform/identity.ts';
import { createInternalSigner } from '../../platform/internal-token.ts';
import { ensureDevKeys, importPrivatePem, INTERNAL_ALGORITHM, type DevKeys } from '../../platform/keys.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createClientVerifier } from './auth.ts';
import { EntityCache } from './cache/entity-cache.ts';
import { SharedFetches } from './shared-fetches.ts';
import { responseCache } from './cache/response-cache.ts';
import { checkSubgraphOverrides, overrideKey, type GatewayConfig } from './config.ts';
import { createGatewayContextFactory } from './context.ts';
import { loadRegisteredOperations } from './portal.ts';
import { documentProblem, screenRequest } from './request-guard.ts';
import { operationLimits } from './limits.ts';
import { listSizesOfSupergraph, operationCost } from './cost.ts';
import type { ListSizes } from '../../platform/paging.ts';
import { GraphQLError, specifiedRules, validate } from 'graphql';
import { createServer } from './server.ts';
import { createGatewayMetrics } from './metrics.ts';
import { ideAssets } from './ide.ts';
import { supergraphManager, type SupergraphSource } from './supergraph-source.ts';
import { WORKER_SLOT_VARIABLE, workerLink } from './workers.ts';
import type { EventBroker } from '../../platform/events/broker.ts';
import { openBroker } from '../../platform/events/config.ts';
import { loadEntityRefs } from '../../platform/events/schemas.ts';
import { consumeEvents } from './events.ts';
import { LiveHub } from './live/hub.ts';
import { serveLive } from './live/transports.ts';
import { AnswerLifetime } from './cache/response-cache.ts';
import { consoleHandler, DEV_TOKEN_TTL_SECONDS } from './console/console.ts';
import { createOverviewSource } from './console/overview.ts';
import { traceStore } from './console/traces.ts';
import { signDevToken } from '../../platform/dev-token.ts';

/** Keys tests pass in place of configured or data-folder keys. */
export interface GatewayKeys {
  /** Verifies client tokens when the configuration names no issuer key. */
  issuerPublicKey?: CryptoKey;
  /** Signs internal tokens for the subgraphs. */
  internalPrivateKey?: CryptoKey;
  /**
   * Signs the console's dev sign-in tokens: the private half of issuerPublicKey. Without it, a
   * gateway given issuerPublicKey offers no dev sign-in (it could sign no token it accepts).
   */
  issuerPrivateKey?: CryptoKey;
}

/** Loads the supergraph the configuration names (and follows it when asked) and serves it. */
export async function startGateway(
  config: GatewayConfig,
  options: {
    logger?: Logger;
    keys?: GatewayKeys;
    /** Serve every request as this identity and send subgraphs no token: npm run bench:security only. */
    withoutSecurity?: Identity;
    /** This process is one of several workers (workers.ts). */
    worker?: boolean;
    /** The broker events come from, in place of the configured one (not closed by the gateway). */
    broker?: EventBroker;
  } = {},
): Promise<RunningService & { cache: EntityCache | null; broker: EventBroker; hub: LiveHub }> {
  const logger = options.logger ?? createLogger('gateway', config.logLevel);
  const { source, routingUrls } = checkSupergraph(config);
  let devKeys: DevKeys | undefined;
  const dev = async () => (devKeys ??= await ensureDevKeys(config.dataDir));
  const issuerPublicKey = options.keys?.issuerPublicKey ?? (config.auth.key.kind === 'dev' ? (await dev()).issuer.publicKey : undefined);
  const internalPrivateKey =
    options.keys?.internalPrivateKey ??
    (config.internalTokenPrivateKey
      ? await importPrivatePem(config.internalTokenPrivateKey, INTERNAL_ALGORITHM)
      : (await dev()).internal.privateKey);

  const metrics = createMetrics('gateway', { processMetrics: true });
  const cacheStore =
    config.cache.store === 'none'
      ? null
      : createCacheStore(
          config.cache.store === 'redis'
            ? { kind: 'redis', url: config.cache.redisUrl!, prefix: 'concord' }
            : { kind: 'memory', maxBytes: config.cache.memoryBytes },
          { logger, registry: metrics.registry, timeoutMs: config.cache.timeoutMs, backoffMs: 5_000 },
        );
  if (cacheStore && !(await cacheStore.connected(2_000)))
    logger.warn('cache store not reachable at start; serving without cache until it is');
  const sharedFetches = new SharedFetches(metrics.registry);
  const cache = cacheStore ? new EntityCache(cacheStore, config.cache.ttls, logger, metrics.registry, sharedFetches) : null;
  const link = options.worker ? workerLink(metrics.registry, logger) : null;

  const portalOperations = loadRegisteredOperations(config.portalOperationsDir);
  const entityRefs = loadEntityRefs();
  // Each message of a subscription is a query asked through this server as the subscriber.
  // The limits a query meets, met by the query each subscription's messages ask, when it opens.
  const liveArmor = operationLimits(config.limits).protect();
  let liveSizes: ListSizes = new Map();
  const hub = new LiveHub({
    check: (apiSchema, document, variables) => {
      const problem = documentProblem(document, config.limits);
      if (problem) return [new GraphQLError(problem, { extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })];
      const invalid = validate(apiSchema, document, [...specifiedRules, ...(liveArmor.validationRules ?? [])]);
      if (invalid.length > 0)
        return invalid.map((error) => new GraphQLError(error.message, { extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }));
      const cost = operationCost({ schema: apiSchema, sizes: liveSizes }, document, variables);
      return cost > config.limits.maxCost
        ? [
            new GraphQLError(
              `Operation cost ${cost} exceeds the limit of ${config.limits.maxCost}; ask for fewer rows (first) or fewer nested lists`,
              {
                extensions: { code: 'OPERATION_TOO_COSTLY', cost, maxCost: config.limits.maxCost },
              },
            ),
          ]
        : [];
    },
    registered: portalOperations,
    entityRefs,
    logger,
    maxTokens: config.limits.maxTokens,
    execute: async (query, variables, identity, correlationId) => {
      const response = await apollo.executeOperation(
        { query, variables },
        { contextValue: { correlationId, identity, answerLifetime: new AnswerLifetime(), live: true } },
      );
      return response.body.kind === 'single'
        ? { data: response.body.singleResult.data ?? null, errors: response.body.singleResult.errors as never }
        : { data: null };
    },
  });
  const apollo = createServer({
    supergraph: supergraphManager(source, logger),
    subgraphUrls: config.subgraphUrls,
    subgraphTimeoutMs: config.subgraphTimeoutMs,
    subgraphMaxResponseBytes: config.subgraphMaxResponseBytes,
    logger,
    signInternal: options.withoutSecurity ? null : createInternalSigner(internalPrivateKey),
    limits: config.limits,
    production: config.environment === 'production',
    portalOperations,
    batching: config.batching,
    queryPlanCacheMb: config.queryPlanCacheMb,
    cache,
    sharedFetches,
    responseCache: cache && cacheStore && config.cache.wholeAnswers ? responseCache(cacheStore, cache) : null,
    metrics: createGatewayMetrics(metrics.registry),
    onSchema: (apiSchema, coreSupergraphSdl) => {
      if (coreSupergraphSdl) liveSizes = listSizesOfSupergraph(coreSupergraphSdl);
      hub.setSchema(apiSchema);
    },
  });
  const broker = options.broker ?? (await openBroker(config.events, logger));
  const verify = options.withoutSecurity ? async () => options.withoutSecurity! : await createClientVerifier(config.auth, issuerPublicKey);
  // The operations console (console/): its figures from this process's registry, in every environment.
  const overview = createOverviewSource({ registry: metrics.registry, routingUrls: () => routingUrls });
  // Dev sign-in: only off production and with the development issuer, signed with the key its tokens are verified with.
  const devSigningKey =
    config.environment === 'production' || config.auth.key.kind !== 'dev' || options.withoutSecurity
      ? undefined
      : (options.keys?.issuerPrivateKey ?? (options.keys?.issuerPublicKey ? undefined : (await dev()).issuer.privateKey));
  const consoleTraces = config.consoleTraces ? traceStore(config.consoleTraces.url, config.consoleTraces.headers) : null;
  const consoleWeb = consoleHandler({
    verify,
    overview,
    signIn: config.consoleSignIn,
    traces: consoleTraces,
    rolesClaim: config.auth.rolesClaim,
    devSignIn: devSigningKey
      ? (role) =>
          signDevToken(
            devSigningKey,
            { roles: [role], subject: `console-${role}@concord.example`, ttlSeconds: DEV_TOKEN_TTL_SECONDS },
            config.auth.audience,
          )
      : null,
  });
  const ideWeb = config.environment === 'production' ? null : ideAssets();
  let live: ReturnType<typeof serveLive> | null = null;
  let consumer: Awaited<ReturnType<typeof consumeEvents>> | null = null;
  const service = await startService({
    name: 'gateway',
    host: config.host,
    port: config.port,
    apollo,
    context: createGatewayContextFactory(verify, logger, (body, identity) =>
      screenRequest(body, identity, { ...config.limits, registered: portalOperations }),
    ),
    ready: () => true,
    logger,
    metrics,
    streams: new Map([['/graphql/stream', (req, res) => live!.stream(req, res)]]),
    // The operations console (console/console.ts) everywhere; the GraphQL IDE's files (ide.ts) in development only.
    web: async (req, res) => (await consoleWeb(req, res)) || (ideWeb !== null && (await ideWeb(req, res))),
    onDrain: async () => {
      await live?.close();
      await consumer?.stop();
    },
    ...(link ? { metricsText: () => link.metrics() } : {}),
    metricsEndpoint: config.metrics,
    // With workers, the primary serves the metrics port for all of them (workers.ts).
    metricsServedElsewhere: link !== null,
    shutdownGraceMs: config.shutdownGraceMs,
    corsOrigins: config.corsOrigins,
    closeAfterDrain: async () => {
      overview.stop();
      await consoleTraces?.close();
      await consumer?.stop();
      if (!options.broker) await broker.close();
      await cacheStore?.close();
    },
  });
  live = serveLive(service.httpServer, {
    hub,
    verify,
    logger,
    limits: { ...config.live, maxTokenAgeSeconds: config.auth.maxTokenAgeSeconds },
  });
  const slot = process.env[WORKER_SLOT_VARIABLE];
  consumer = await consumeEvents({
    broker,
    // Durable per replica (and worker): a restarted one resumes where it acknowledged.
    name: `gateway-${config.replica}${options.worker && slot ? `-w${slot}` : ''}`,
    cache,
    sharedFetches,
    hub,
    entityRefs,
    logger,
    registry: metrics.registry,
  });
  return { ...service, cache, broker, hub };
}

/** Reads the supergraph the configuration names and checks the routing overrides against it. */
function checkSupergraph(config: GatewayConfig): { source: SupergraphSource; routingUrls: Record<string, string> } {
  const source = supergraphSourceOf(config);
  // Where each subgraph is called (the console asks its /ready and /metrics there): the overrides, else the supergraph's URL.
  const routingUrls: Record<string, string> = { ...config.subgraphUrls };
  if (source.kind !== 'url') {
    const sdl = source.kind === 'static' ? source.sdl : readFileSync(source.path, 'utf8');
    const subgraphs = Supergraph.build(sdl).subgraphs();
    checkSubgraphOverrides(config.subgraphUrls, subgraphs.names());
    for (const subgraph of subgraphs.values()) routingUrls[subgraph.name] = config.subgraphUrls[overrideKey(subgraph.name)] ?? subgraph.url;
  }
  return { source, routingUrls };
}

function supergraphSourceOf(config: GatewayConfig): SupergraphSource {
  const intervalMs = config.supergraphPollIntervalMs;
  if (config.supergraphUrl) return { kind: 'url', url: config.supergraphUrl, intervalMs };
  if (config.supergraphWatch) return { kind: 'file', path: config.supergraphPath, intervalMs };
  return { kind: 'static', sdl: readFileSync(config.supergraphPath, 'utf8') };
}
