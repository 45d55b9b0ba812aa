import { pathToFileURL } from 'node:url';
import { createConnectorTelemetry } from '../../../platform/connector-telemetry.ts';
import type { RunningService } from '../../../platform/http-server.ts';
import { createLogger, type Logger } from '../../../platform/logger.ts';
import { createMetrics } from '../../../platform/metrics.ts';
import { runMain } from '../../../platform/process.ts';
import { openDatabase, type Database } from '../../../platform/sqlite.ts';
import { serveSubgraph } from '../../../platform/subgraph.ts';
import { systemClock, type Clock } from '../../../platform/time.ts';
import { loadCrmConfig, type CrmConfig } from './config.ts';
import { createEmbeddedCrmConnector } from './connectors/embedded/index.ts';
import type { CrmConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { createServer } from './server.ts';

/**
 * Picks the CRM adapter the configuration names, then serves the CRM subgraph. Tests
 * pass an open `database` (an in-memory one) in place of the configured file.
 */
export async function startCrm(
  config: CrmConfig,
  options: { logger?: Logger; clock?: Clock; database?: Database } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger('crm', config.logLevel);
  const metrics = createMetrics('crm', { processMetrics: true });
  const telemetry = createConnectorTelemetry('crm', metrics, logger);
  const connector: CrmConnector = createEmbeddedCrmConnector(options.database ?? openDatabase(config.connector.database), telemetry);
  return serveSubgraph({
    name: 'crm',
    host: config.host,
    port: config.port,
    apollo: createServer({ logger }),
    connector,
    context: createContextFactory({ connector, logger, clock: options.clock ?? systemClock }),
    logger,
    metrics,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('crm', () => startCrm(loadCrmConfig()));
}
