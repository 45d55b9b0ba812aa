import { pathToFileURL } from 'node:url';
import { createConnectorTelemetry } from '../../../platform/connector-telemetry.ts';
import type { RunningService } from '../../../platform/http-server.ts';
import { createLogger, type Logger } from '../../../platform/logger.ts';
import { createMetrics } from '../../../platform/metrics.ts';
import { runMain } from '../../../platform/process.ts';
import { openDatabase, type Database } from '../../../platform/sqlite.ts';
import { serveSubgraph } from '../../../platform/subgraph.ts';
import { systemClock, type Clock } from '../../../platform/time.ts';
import { loadErpConfig, type ErpConfig } from './config.ts';
import { createEmbeddedErpConnector } from './connectors/embedded/index.ts';
import type { ErpConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { createServer } from './server.ts';

/**
 * Picks the ERP adapter the configuration names, then serves the ERP subgraph. Tests
 * pass an open `database` (an in-memory one) in place of the configured file.
 */
export async function startErp(
  config: ErpConfig,
  options: { logger?: Logger; clock?: Clock; database?: Database } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger('erp', config.logLevel);
  const metrics = createMetrics('erp', { processMetrics: true });
  const telemetry = createConnectorTelemetry('erp', metrics, logger);
  const connector: ErpConnector = createEmbeddedErpConnector(options.database ?? openDatabase(config.connector.database), telemetry);
  return serveSubgraph({
    name: 'erp',
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
  runMain('erp', () => startErp(loadErpConfig()));
}
