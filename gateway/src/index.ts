import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../platform/http-server.ts';
import { startService } from '../../platform/http-server.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { runMain } from '../../platform/process.ts';
import { loadGatewayConfig, type GatewayConfig } from './config.ts';
import { createGatewayContext } from './context.ts';
import { createServer } from './server.ts';

/** Loads the supergraph the configuration names and serves it. */
export async function startGateway(config: GatewayConfig, options: { logger?: Logger } = {}): Promise<RunningService> {
  const logger = options.logger ?? createLogger('gateway', config.logLevel);
  const supergraphSdl = readFileSync(config.supergraphPath, 'utf8');
  const apollo = createServer({
    supergraphSdl,
    subgraphUrls: config.subgraphUrls,
    subgraphTimeoutMs: config.subgraphTimeoutMs,
    logger,
  });
  return startService({
    name: 'gateway',
    host: config.host,
    port: config.port,
    apollo,
    context: createGatewayContext,
    ready: () => true,
    logger,
    metrics: createMetrics('gateway', { processMetrics: true }),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('gateway', () => startGateway(loadGatewayConfig()));
}
