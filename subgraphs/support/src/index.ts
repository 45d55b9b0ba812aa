import { pathToFileURL } from 'node:url';
import { createConnectorTelemetry } from '../../../platform/connector-telemetry.ts';
import type { RunningService } from '../../../platform/http-server.ts';
import { createLogger, type Logger } from '../../../platform/logger.ts';
import { createMetrics } from '../../../platform/metrics.ts';
import { runMain } from '../../../platform/process.ts';
import { openDatabase, type Database } from '../../../platform/sqlite.ts';
import { serveSubgraph } from '../../../platform/subgraph.ts';
import { systemClock, type Clock } from '../../../platform/time.ts';
import { loadSupportConfig, type SupportConfig } from './config.ts';
import { createEmbeddedSupportConnector } from './connectors/embedded/index.ts';
import type { SupportConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { createServer } from './server.ts';

/**
 * Picks the support desk adapter the configuration names, then serves the support subgraph. Tests
 * pass an open `database` (an in-memory one) in place of the configured file.
 */
export async function startSupport(
  config: SupportConfig,
  options: { logger?: Logger; clock?: Clock; database?: Database } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger('support', config.logLevel);
  const metrics = createMetrics('support', { processMetrics: true });
  const telemetry = createConnectorTelemetry('support', metrics, logger);
  const connector: SupportConnector = createEmbeddedSupportConnector(
    options.database ?? openDatabase(config.connector.database),
    telemetry,
  );
  return serveSubgraph({
    name: 'support',
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
  runMain('support', () => startSupport(loadSupportConfig()));
}
