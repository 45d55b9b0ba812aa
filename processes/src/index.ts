import { pathToFileURL } from 'node:url';
import type { CryptoKey } from 'jose';
import { Counter, Gauge, type Registry } from 'prom-client';
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
import {
  createWorkflowEngine,
  type StepEvent,
  type WorkflowDefinition,
  type WorkflowEngine,
  type WorkflowState,
  type WorkflowStats,
} from '../../platform/workflow/engine.ts';
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
  let steps: ReturnType<typeof stepMetrics>;
  try {
    approvals = await ReturnApprovals.open(sql, config.returns.agentLimitWindowHours * 3_600_000);
    const workflows = [
      ...workflowsOf({ graph, logger, clock, returns: { ...config.returns, approvals } }),
      ...(options.extraWorkflows ?? []),
    ];
    steps = stepMetrics(workflows);
    engine = await createWorkflowEngine({
      sql,
      workflows,
      logger,
      owner: config.replica,
      leaseMs: config.leaseMs,
      pollMs: config.pollMs,
      concurrency: config.concurrency,
      retry: config.retry,
      events: { broker, source: 'concord/processes' },
      onStep: steps.count,
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
      steps.registerOn(metrics.registry);
      exportStoreGauges(metrics.registry, engine, logger);
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

const STATES: readonly WorkflowState[] = ['running', 'waiting', 'done', 'failed', 'compensated'];

/**
 * The step counters, made before the engine (which counts into them as its steps end) and
 * registered with the service's registry once it exists. Every known type × step starts at 0,
 * so the first retry of a step is an increase Prometheus sees.
 */
function stepMetrics(workflows: readonly WorkflowDefinition[]) {
  const outcomes = new Counter({
    name: 'concord_workflow_steps_total',
    help: 'Attempts of workflow steps that ended, by type, step and outcome (done; compensated: undone; retried: failed, tried again later; failed: parked or failed for good).',
    labelNames: ['type', 'step', 'outcome'],
    registers: [],
  });
  const retries = new Counter({
    name: 'concord_workflow_step_retries_total',
    help: 'Retries of workflow steps scheduled after a failed attempt, by type and step.',
    labelNames: ['type', 'step'],
    registers: [],
  });
  for (const { type, steps } of workflows)
    for (const step of steps) {
      for (const outcome of ['done', 'retried', 'failed', ...(step.compensate ? ['compensated'] : [])])
        outcomes.inc({ type, step: step.name, outcome }, 0);
      retries.inc({ type, step: step.name }, 0);
    }
  return {
    count: ({ type, step, outcome }: StepEvent) => {
      outcomes.inc({ type, step, outcome });
      if (outcome === 'retried') retries.inc({ type, step });
    },
    registerOn: (registry: Registry) => {
      registry.registerMetric(outcomes);
      registry.registerMetric(retries);
    },
  };
}

/**
 * The gauges read from the store at each scrape (one reading shared by all of them): store-wide
 * numbers, the same on every replica. While the store is down they keep their last values, and
 * the scrape still answers. Every type × state is reported, 0 where there is none.
 */
function exportStoreGauges(registry: Registry, engine: WorkflowEngine, logger: Logger): void {
  let reading: Promise<WorkflowStats | null> | null = null;
  const read = () =>
    (reading ??= engine
      .stats()
      .catch((error: unknown) => {
        logger.warn({ err: error }, 'workflow metrics could not be read from the store');
        return null;
      })
      .finally(() => {
        reading = null;
      }));
  // A type seen once (another version's, say) is reported on, at 0 when its instances are gone.
  const seen = new Set<string>();
  const byType = (stats: WorkflowStats) => {
    for (const type of Object.keys(stats.types)) seen.add(type);
    return [...seen].map((type) => ({ type, stats: stats.types[type] ?? null }));
  };
  new Gauge({
    name: 'concord_workflow_instances',
    help: 'Workflow instances in the store, by type and state (failed: parked in the exception queue).',
    labelNames: ['type', 'state'],
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats)
        for (const { type, stats: of } of byType(stats)) for (const state of STATES) this.set({ type, state }, of?.states[state] ?? 0);
    },
  });
  new Gauge({
    name: 'concord_workflow_exceptions',
    help: 'Workflow instances parked in the exception queue (state failed), waiting for an operator, by type.',
    labelNames: ['type'],
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) for (const { type, stats: of } of byType(stats)) this.set({ type }, of?.states.failed ?? 0);
    },
  });
  new Gauge({
    name: 'concord_workflow_exception_oldest_age_seconds',
    help: 'Seconds since the longest-parked workflow instance of the type was parked in the exception queue; 0 when none is.',
    labelNames: ['type'],
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) for (const { type, stats: of } of byType(stats)) this.set({ type }, (of?.oldestParkedAgeMs ?? 0) / 1_000);
    },
  });
  new Gauge({
    name: 'concord_outbox_depth',
    help: 'Events recorded in the workflow outbox, not yet published to the broker.',
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) this.set(stats.outbox.depth);
    },
  });
  new Gauge({
    name: 'concord_outbox_oldest_age_seconds',
    help: 'Seconds since the oldest event not yet published from the workflow outbox was recorded; 0 when none is.',
    registers: [registry],
    async collect() {
      const stats = await read();
      if (stats) this.set((stats.outbox.oldestAgeMs ?? 0) / 1_000);
    },
  });
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
