import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../platform/http-server.ts';
import { startService } from '../../platform/http-server.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { runMain } from '../../platform/process.ts';
import { Supergraph } from '@apollo/federation-internals';
import { checkSubgraphOverrides, loadGatewayConfig, type GatewayConfig } from './config.ts';
import { createGatewayContext } from './context.ts';
import { createServer } from './server.ts';
import { supergraphManager, type SupergraphSource } from './supergraph-source.ts';

/** Loads the supergraph the configuration names (and follows it when asked) and serves it. */
export async function startGateway(config: GatewayConfig, options: { logger?: Logger } = {}): Promise<RunningService> {
  const logger = options.logger ?? createLogger('gateway', config.logLevel);
  const source = supergraphSourceOf(config);
  if (source.kind !== 'url') {
    const sdl = source.kind === 'static' ? source.sdl : readFileSync(source.path, 'utf8');
    checkSubgraphOverrides(config.subgraphUrls, Supergraph.build(sdl).subgraphs().names());
  }
  const apollo = createServer({
    supergraph: supergraphManager(source, logger),
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

function supergraphSourceOf(config: GatewayConfig): SupergraphSource {
  const intervalMs = config.supergraphPollIntervalMs;
  if (config.supergraphUrl) return { kind: 'url', url: config.supergraphUrl, intervalMs };
  if (config.supergraphWatch) return { kind: 'file', path: config.supergraphPath, intervalMs };
  return { kind: 'static', sdl: readFileSync(config.supergraphPath, 'utf8') };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('gateway', () => startGateway(loadGatewayConfig()));
}
