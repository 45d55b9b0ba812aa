import cluster from 'node:cluster';
import { pathToFileURL } from 'node:url';
import { createLogger } from '../../platform/logger.ts';
import { runMain } from '../../platform/process.ts';
import { loadGatewayConfig, type GatewayConfig } from './config.ts';
import { runPrimary } from './workers.ts';

/**
 * The gateway's entry point. With GATEWAY_WORKERS above one, this process becomes the cluster's
 * primary: it loads only the configuration and forks the workers, each of which loads the
 * gateway itself (gateway.ts), so the primary stays small. A worker refusing its configuration
 * stops the primary with the same exit code (78).
 */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let config: GatewayConfig | undefined;
  try {
    config = loadGatewayConfig();
  } catch {
    config = undefined; // runMain reports the configuration error (and exits 78).
  }
  if (config && config.workers > 1 && cluster.isPrimary)
    runPrimary({
      count: config.workers,
      logger: createLogger('gateway', config.logLevel),
      metrics: config.metrics,
      host: config.host,
      shutdownGraceMs: config.shutdownGraceMs,
    });
  else
    runMain('gateway', async () => {
      const { startGateway } = await import('./gateway.ts');
      return startGateway(config ?? loadGatewayConfig(), { worker: cluster.isWorker });
    });
}
