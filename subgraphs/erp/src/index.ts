import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../../platform/http-server.ts';
import { IdempotencyStore } from '../../../platform/idempotency.ts';
import { Outbox, startOutboxWorker, type OutboxWorker } from '../../../platform/outbox.ts';
import { runMain } from '../../../platform/process.ts';
import { createResilience, isVendorOutage } from '../../../platform/resilience.ts';
import { tokenSourceOf } from '../../../platform/vendor-config.ts';
import { serviceTokens } from '../../../platform/service-identity.ts';
import { createServiceClient } from '../../../platform/service-client.ts';
import { isSqliteOutage, openDatabase, type Database } from '../../../platform/sqlite.ts';
import { openEmbeddedDatabase } from '../../../platform/subgraph-config.ts';
import { startSubgraph, type SubgraphOptions } from '../../../platform/subgraph.ts';
import { loadErpConfig, type ErpConfig } from './config.ts';
import { createBusinessCentralConnector } from './connectors/businessCentral.ts';
import { createEmbeddedErpConnector } from './connectors/embedded/index.ts';
import { ERP_SCHEMA } from './connectors/embedded/tables.ts';
import type { ErpConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { returnDeliveries } from './returns/deliveries.ts';
import { ReturnApprovals } from './returns/approvals.ts';
import { ReturnsProcess, type StoredOutcome } from './returns/process.ts';
import { createServer } from './server.ts';

export interface ErpOptions extends SubgraphOptions<Database, ErpConnector> {
  /** The process store's database in place of the configured file (in-memory in tests). */
  processDatabase?: Database;
  /** The gateway the return process calls, in place of the configured URL (read at each call). */
  gatewayUrl?: string | (() => string);
  /** Bearer tokens for the integration identity, in place of the configured or dev ones. */
  serviceToken?: () => Promise<string>;
}

/** The running ERP subgraph. */
export interface ErpService extends RunningService {
  /** Delivers the outbox entries that are due now, without waiting for the next poll. */
  drainOutbox(): Promise<number>;
}

/**
 * Picks the ERP adapter the configuration names, then serves the ERP subgraph with its return
 * process and the outbox worker that delivers the process's follow-on writes.
 */
export async function startErp(config: ErpConfig, options: ErpOptions = {}): Promise<ErpService> {
  const processDb = options.processDatabase ?? openDatabase(config.returns.processDatabase);
  const outbox = new Outbox(processDb);
  const token = options.serviceToken ?? serviceTokens(config.returns.serviceToken, config.dataDir, 'erp-returns-process');
  let worker: OutboxWorker | undefined;
  // A claim outlives the longest a request can take (retried ERP and graph calls), so no second
  // request takes over a key whose first is still running; a claim of a process that died is
  // free once that process has been silent for the holder timeout.
  const idempotency = new IdempotencyStore<StoredOutcome>(processDb, {
    ttlMs: config.returns.idempotencyTtlMs,
    leaseMs: 5 * 60_000,
    holderTimeoutMs: config.returns.idempotencyHolderTimeoutMs,
  });
  const heartbeat = setInterval(() => idempotency.heartbeat(), Math.max(100, Math.floor(config.returns.idempotencyHolderTimeoutMs / 5)));
  heartbeat.unref();
  const approvals = new ReturnApprovals(processDb, config.returns.agentLimitWindowHours * 3_600_000);
  // Expired keys, approvals and week-old deliveries are removed hourly, so the process store stays small.
  const housekeeping = setInterval(() => {
    idempotency.purge();
    approvals.purge(Date.now());
    outbox.prune(7 * 86_400_000);
  }, 3_600_000);
  housekeeping.unref();
  const service = await startSubgraph({
    name: 'erp',
    config,
    logger: options.logger,
    clock: options.clock,
    internalPublicKey: options.internalPublicKey,
    withoutSecurity: options.withoutSecurity,
    isOutage: config.businessCentral ? isVendorOutage : isSqliteOutage,
    createConnector: (telemetry, logger) => {
      const bc = config.businessCentral;
      let connector: ErpConnector;
      if (bc) {
        const tokens = tokenSourceOf(bc.token, 'erp');
        connector = createBusinessCentralConnector({
          baseUrl: bc.baseUrl,
          companyId: bc.companyId,
          extension: bc.extension,
          token: tokens,
          refreshToken: tokens.refresh,
          telemetry,
          resilience: createResilience('erp', bc.policy, { logger }),
        });
      } else {
        connector = createEmbeddedErpConnector(options.database ?? openEmbeddedDatabase(config.connector, ERP_SCHEMA), telemetry);
      }
      return options.wrapConnector ? options.wrapConnector(connector) : connector;
    },
    createServer,
    // After the requests in flight: they hold idempotency claims (kept alive by the heartbeat)
    // and write deliveries to the outbox.
    async close() {
      clearInterval(housekeeping);
      clearInterval(heartbeat);
      await worker?.stop();
      idempotency.retire();
      processDb.close();
    },
    createContext: (deps) => {
      const graph = createServiceClient({
        url: options.gatewayUrl ?? config.returns.gatewayUrl,
        token,
        timeoutMs: 10_000,
        logger: deps.logger,
      });
      const returns = new ReturnsProcess({
        erp: deps.connector,
        graph,
        idempotency,
        outbox,
        logger: deps.logger,
        clock: deps.clock,
        agentLimit: config.returns.agentLimit,
        approvals,
        approvalWindowHours: config.returns.agentLimitWindowHours,
        waitMs: config.returns.idempotencyWaitMs,
      });
      worker = startOutboxWorker({ outbox, handlers: returnDeliveries(graph), logger: deps.logger, ...config.returns.outbox });
      return createContextFactory({ ...deps, returns });
    },
  });
  return {
    ...service,
    drainOutbox: () => worker?.drain() ?? Promise.resolve(0),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('erp', () => startErp(loadErpConfig()));
}
