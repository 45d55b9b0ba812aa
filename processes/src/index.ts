import { pathToFileURL } from 'node:url';
import type { CryptoKey } from 'jose';
import { Gauge } from 'prom-client';
import type { RunningService } from '../../platform/http-server.ts';
import type { EventBroker, EventConsumer } from '../../platform/events/broker.ts';
import { followCrmSubscriptions } from './triggers.ts';
import { openBroker } from '../../platform/events/config.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import { runMain } from '../../platform/process.ts';
import { createServiceClient } from '../../platform/service-client.ts';
import { serviceTokens } from '../../platform/service-identity.ts';
import { openDatabase, isSqliteOutage } from '../../platform/sqlite.ts';
import { startSubgraph } from '../../platform/subgraph.ts';
import { systemClock, type Clock } from '../../platform/time.ts';
import { createWorkflowEngine, type WorkflowDefinition, type WorkflowEngine } from '../../platform/workflow/engine.ts';
import { postgresExecutor, sqliteExecutor, type SqlExecutor } from '../../platform/workflow/sql.ts';
import { loadProcessesConfig, type ProcessesConfig } from './config.ts';
import { createContextFactory } from './context.ts';
import { createServer } from './server.ts';
import { ReturnApprovals } from './workflows/approvals.ts';
import { workflowsOf } from './workflows/index.ts';
import { OnboardingRequests } from './workflows/onboarding.ts';
import { QuoteToOrderRequests } from './workflows/quoteToOrder.ts';
import { ReturnRequests } from './workflows/returns.ts';
import { SubscriptionRequests } from './workflows/subscriptions.ts';

export interface ProcessesOptions {
  logger?: Logger;
  clock?: Clock;
  /** The key internal tokens are verified with, in place of the configured one. */
  internalPublicKey?: CryptoKey;
  /** An open store in place of the configured one. */
  sql?: SqlExecutor;
  /** More workflow types beside the service's own (tests run their own through the real service). */
  extraWorkflows?: readonly WorkflowDefinition[];
  /** The gateway the steps call, in place of the configured URL (read at each call). */
  gatewayUrl?: string | (() => string);
  /** Bearer tokens for the service identity, in place of the configured or dev ones. */
  serviceToken?: () => Promise<string>;
  /** Where the workflows' events go, in place of the configured broker (not closed by the service). */
  broker?: EventBroker;
}

/** The running process service. */
export interface ProcessesService extends RunningService {
  readonly engine: WorkflowEngine;
  /** The broker the workflows' events are published to. */
  readonly broker: EventBroker;
}

/**
 * Serves the process API: the workflow engine on its store (SQLite by default, PostgreSQL for
 * several replicas), polling for due steps, and the subgraph through which people follow the
 * workflows. Steps reach systems only through the graph, as the service's `integration` identity.
 */
export async function startProcesses(config: ProcessesConfig, options: ProcessesOptions = {}): Promise<ProcessesService> {
  const logger = options.logger ?? createLogger('processes', config.logLevel);
  const clock = options.clock ?? systemClock;
  const sql = options.sql ?? openStore(config);
  const graph = createServiceClient({
    url: options.gatewayUrl ?? config.gatewayUrl,
    token: options.serviceToken ?? serviceTokens(config.serviceToken, config.dataDir, 'concord-processes'),
    timeoutMs: config.callTimeoutMs,
    logger,
  });
  let broker: EventBroker;
  try {
    broker = options.broker ?? (await openBroker(config.events, logger));
  } catch (error) {
    await sql.close();
    throw error;
  }
  const closeBroker = async () => {
    if (!options.broker) await broker.close();
  };
  let engine: WorkflowEngine;
  let approvals: ReturnApprovals;
  let following: EventConsumer | null = null;
  try {
    approvals = await ReturnApprovals.open(sql, config.returns.agentLimitWindowHours * 3_600_000);
    engine = await createWorkflowEngine({
      sql,
      workflows: [...workflowsOf({ graph, logger, clock, returns: { ...config.returns, approvals } }), ...(options.extraWorkflows ?? [])],
      logger,
      owner: config.replica,
      leaseMs: config.leaseMs,
      pollMs: config.pollMs,
      concurrency: config.concurrency,
      retry: config.retry,
      events: { broker, source: 'concord/processes' },
    });
  } catch (error) {
    await closeBroker();
    await sql.close();
    throw error;
  }
  logger.info({ store: config.store.kind, replica: config.replica }, `processes keeps its workflows in ${describeStore(config)}`);
  const returns = new ReturnRequests({ engine, graph, logger, waitMs: config.answerWaitMs });
  const quoteToOrder = new QuoteToOrderRequests({ engine, graph, logger, waitMs: config.answerWaitMs });
  const onboarding = new OnboardingRequests({ engine, graph, logger, waitMs: config.answerWaitMs });
  const subscriptions = new SubscriptionRequests({ engine, graph, logger, waitMs: config.answerWaitMs });
  // Approvals older than their window count no more: removed hourly, so the store stays small.
  const housekeeping = setInterval(() => void approvals.purge(Date.now()).catch(() => undefined), 3_600_000);
  housekeeping.unref();
  const service = await startSubgraph({
    name: 'processes',
    config,
    logger,
    clock,
    internalPublicKey: options.internalPublicKey,
    overSystem: false,
    isOutage: isStoreOutage,
    createConnector: (_telemetry, _logger, metrics) => {
      new Gauge({
        name: 'concord_workflows',
        help: 'Workflow instances in the store, by state (failed: parked in the exception queue).',
        labelNames: ['state'],
        registers: [metrics.registry],
        async collect() {
          const counts = await engine.counts().catch(() => null);
          if (counts) for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
        },
      });
      return {
        ping: async () => {
          await sql.query('SELECT 1');
        },
        // After the requests in flight: the steps running finish (within the grace) and give up their leases.
        close: async () => {
          clearInterval(housekeeping);
          await following?.stop();
          await engine.stop(config.shutdownGraceMs);
          await closeBroker();
          await sql.close();
        },
      };
    },
    createServer,
    createContext: (deps) =>
      createContextFactory({ engine, returns, quoteToOrder, onboarding, subscriptions, logger: deps.logger, clock: deps.clock }),
  });
  engine.startPolling();
  if (config.subscriptionsFromCrm)
    try {
      following = await followCrmSubscriptions({
        broker,
        graph,
        subscriptions,
        identity: { subject: 'concord-processes', roles: ['integration'], customerId: null },
        logger,
      });
    } catch (error) {
      await service.stop();
      throw error;
    }
  return { ...service, engine, broker };
}

function openStore(config: ProcessesConfig): SqlExecutor {
  const { store } = config;
  if (store.kind === 'postgres')
    return postgresExecutor({ url: store.url, max: store.poolSize, applicationName: `concord-processes ${config.replica}` });
  return sqliteExecutor(openDatabase(store.file));
}

/** Where the store is, without a password. */
function describeStore(config: ProcessesConfig): string {
  const { store } = config;
  if (store.kind === 'sqlite') return `SQLite ${store.file}`;
  const url = new URL(store.url);
  return `PostgreSQL ${url.hostname}:${url.port || 5432}${url.pathname}`;
}

/** Connection-level failures of PostgreSQL, and SQLite's: the store is unavailable, not wrong. */
function isStoreOutage(error: unknown): boolean {
  if (isSqliteOutage(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EPIPE)$/.test(code) || /^(08|57P)/.test(code));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('processes', () => startProcesses(loadProcessesConfig()));
}
