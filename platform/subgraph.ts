import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ApolloServer, type BaseContext } from '@apollo/server';
import type { CryptoKey } from 'jose';
import { buildSubgraphSchema, type GraphQLResolverMap } from '@apollo/subgraph';
import { parse } from 'graphql';
import { createConnectorTelemetry, type ConnectorTelemetry } from './connector-telemetry.ts';
import { withoutPerFieldHooks } from './subgraph-context.ts';
import type { EventBroker } from './events/broker.ts';
import { openBroker } from './events/config.ts';
import type { ChangeFeed, ChangeFeedDeps } from './events/source.ts';
import { authorize, type AuthorizedContext, type Owners, type PolicyTable, type SensitiveFields } from './authorization.ts';
import { subgraphErrorFormatter } from './errors.ts';
import type { Identity } from './identity.ts';
import { createInternalVerifier } from './internal-token.ts';
import { ensureDevKeys, importPublicPem, INTERNAL_ALGORITHM } from './keys.ts';
import { withLatency } from './latency.ts';
import { enforceListSizes, listSizesOf } from './paging.ts';
import { startService, type RunningService } from './http-server.ts';
import { auditLogger, createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import type { RequestScope } from './request-context.ts';
import type { SubgraphConfig } from './subgraph-config.ts';
import { systemClock, type Clock } from './time.ts';

/** Reads a subgraph's SDL from its file in the package (fromPackageRoot), for sources and compiled code alike. */
export function readSdl(path: string): string {
  return readFileSync(path, 'utf8');
}

/**
 * An Apollo Server for a subgraph's SDL and resolvers, with errors masked for clients (see
 * subgraphErrorFormatter). Subgraphs sit behind the gateway, so introspection stays on for
 * composition checks.
 */
export function createSubgraphServer<TContext extends AuthorizedContext>(options: {
  sdl: string;
  resolvers: unknown;
  logger: Logger;
  /** The subgraph's policy table, owner functions and audited fields (see authorization.ts). */
  authorization: { policy: PolicyTable; owners: Owners; sensitive?: SensitiveFields };
  /** False only to measure what the rules cost (npm run bench:security); never from configuration. */
  enforce?: boolean;
}): ApolloServer<TContext> {
  const typeDefs = parse(options.sdl);
  // Page sizes and list bounds come from the SDL's @listSize, the same the gateway costs by.
  const schema = enforceListSizes(
    buildSubgraphSchema([{ typeDefs, resolvers: options.resolvers as GraphQLResolverMap<unknown> }]),
    listSizesOf(typeDefs),
    options.logger,
  );
  const { policy, owners, sensitive } = options.authorization;
  const audit = auditLogger(options.logger);
  const server = new ApolloServer<TContext>({
    schema: options.enforce === false ? schema : authorize(schema, policy, owners, sensitive),
    formatError: subgraphErrorFormatter(options.logger),
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    logger: options.logger,
    // The service stops itself on SIGTERM (platform/http-server.ts drains first, then stops this).
    stopOnTerminationSignals: false,
    plugins: [
      {
        async requestDidStart() {
          return {
            async willSendResponse({ contextValue }) {
              contextValue.audit.flush(audit);
            },
          };
        },
      },
    ],
  });
  return withoutPerFieldHooks(server);
}

/** A system adapter as a service sees it: can be asked whether it answers, and closed. */
export interface Closable {
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What tests and tools may put in place of a subgraph's defaults. */
export interface SubgraphOptions<TDatabase, TConnector = unknown> {
  /** Wraps the connector the entry point picked (tests inject faults here). */
  wrapConnector?: (connector: TConnector) => TConnector;
  logger?: Logger;
  clock?: Clock;
  /** An open database (an in-memory one in tests) in place of the configured file. */
  database?: TDatabase;
  /** The broker the subgraph's change feed publishes to, in place of the configured one (not closed by the subgraph). */
  broker?: EventBroker;
  /** The key internal tokens are verified with, in place of the configured one. */
  internalPublicKey?: CryptoKey;
  /**
   * Serve every request as this identity, verifying no token and applying no field rule: only
   * for measuring what the security layer costs (npm run bench:security); no configuration
   * variable reaches it.
   */
  withoutSecurity?: Identity;
}

/** The key that verifies the gateway's internal tokens: configured, or the data folder's dev key. */
async function internalPublicKeyOf(config: SubgraphConfig): Promise<CryptoKey> {
  if (config.internalTokenPublicKey) return importPublicPem(config.internalTokenPublicKey, INTERNAL_ALGORITHM);
  return (await ensureDevKeys(config.dataDir)).internal.publicKey;
}

/**
 * Starts a subgraph: its logger, metrics and connector telemetry, the connector its entry point
 * picked (delayed by the simulated latency, when configured), and an HTTP server that is ready
 * while the connector answers. If start-up fails, the connector is closed again; stop() drains the
 * requests in flight, then closes what the subgraph holds and its connector.
 */
export async function startSubgraph<TContext extends BaseContext, TConnector extends Closable>(spec: {
  name: string;
  config: SubgraphConfig;
  logger?: Logger | undefined;
  clock?: Clock | undefined;
  internalPublicKey?: CryptoKey | undefined;
  withoutSecurity?: Identity | undefined;
  /** False for a service over no system of its own (the process service, whose "connector" is its store). */
  overSystem?: boolean;
  /** Tells an outage of the system from an adapter bug (see createConnectorTelemetry). */
  isOutage: (error: unknown) => boolean;
  createConnector: (telemetry: ConnectorTelemetry, logger: Logger, metrics: Metrics) => TConnector;
  createServer: (deps: { logger: Logger; enforce?: boolean }) => ApolloServer<TContext>;
  createContext: (deps: {
    connector: TConnector;
    logger: Logger;
    clock: Clock;
  }) => (req: IncomingMessage, scope: RequestScope, identity: Identity) => Promise<TContext>;
  /** Closes what the subgraph holds besides its connector, after its requests have finished. */
  close?: () => Promise<void>;
  /** The system's change feed (its webhooks, its poller), publishing canonical events. */
  changeFeed?: (deps: ChangeFeedDeps<TConnector>) => ChangeFeed;
  /** A broker given by the caller (tests); otherwise the configured one is opened, and closed at stop. */
  broker?: EventBroker | undefined;
}): Promise<RunningService> {
  const logger = spec.logger ?? createLogger(spec.name, spec.config.logLevel);
  const unsecured = spec.withoutSecurity;
  const verify = unsecured
    ? async () => unsecured
    : createInternalVerifier(spec.internalPublicKey ?? (await internalPublicKeyOf(spec.config)), spec.name);
  const metrics = createMetrics(spec.name, { processMetrics: true });
  const connector = withLatency(
    spec.createConnector(createConnectorTelemetry(spec.name, metrics, logger, spec.isOutage), logger, metrics),
    spec.config.latencyMs,
  );
  if (spec.overSystem !== false)
    logger.info(
      { connector: spec.config.connectorKind },
      `${spec.name} reads its system through the ${spec.config.connectorKind} connector`,
    );
  if (spec.config.latencyMs > 0)
    logger.warn({ latencyMs: spec.config.latencyMs }, `${spec.name} delays every system call by ${spec.config.latencyMs} ms`);
  // Every request, _service and _entities included, proves the gateway sent it before anything runs.
  const createContext = spec.createContext({ connector, logger, clock: spec.clock ?? systemClock });
  let broker: EventBroker | null = null;
  let feed: ChangeFeed | null = null;
  const ownBroker = !spec.broker;
  let closed = false;
  try {
    if (spec.changeFeed) {
      broker = spec.broker ?? (await openBroker(spec.config.events, logger));
      feed = spec.changeFeed({ connector, broker, logger, metrics, source: `concord/${spec.name}` });
    }
    const service = await startService({
      name: spec.name,
      host: spec.config.host,
      port: spec.config.port,
      apollo: spec.createServer({ logger, enforce: !unsecured }),
      context: async (req, scope) => createContext(req, scope, await verify(req.headers.authorization)),
      logger,
      metrics,
      ready: () => connector.ping().then(() => true),
      metricsEndpoint: spec.config.metrics,
      shutdownGraceMs: spec.config.shutdownGraceMs,
      ...(feed?.routes ? { routes: feed.routes } : {}),
      async closeAfterDrain() {
        closed = true;
        await feed?.stop?.();
        if (ownBroker) await broker?.close();
        await spec.close?.();
        await connector.close();
      },
    });
    try {
      await feed?.start?.();
    } catch (error) {
      await service.stop();
      throw error;
    }
    return service;
  } catch (error) {
    if (closed) throw error;
    if (ownBroker) await broker?.close().catch(() => undefined);
    await connector.close();
    throw error;
  }
}
