import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../../platform/http-server.ts';
import { exportApiBudget } from '../../../platform/metrics.ts';
import { runMain } from '../../../platform/process.ts';
import { createResilience, isVendorOutage } from '../../../platform/resilience.ts';
import { isSqliteOutage, type Database } from '../../../platform/sqlite.ts';
import { openEmbeddedDatabase } from '../../../platform/subgraph-config.ts';
import { startSubgraph, type SubgraphOptions } from '../../../platform/subgraph.ts';
import { loadSupportConfig, type SupportConfig } from './config.ts';
import { createEmbeddedSupportConnector } from './connectors/embedded/index.ts';
import { SUPPORT_SCHEMA } from './connectors/embedded/tables.ts';
import { createZendeskConnector } from './connectors/zendesk.ts';
import type { SupportConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { createServer } from './server.ts';

/** Picks the support desk adapter the configuration names, then serves the support subgraph. */
export function startSupport(config: SupportConfig, options: SubgraphOptions<Database, SupportConnector> = {}): Promise<RunningService> {
  return startSubgraph({
    name: 'support',
    config,
    logger: options.logger,
    clock: options.clock,
    internalPublicKey: options.internalPublicKey,
    withoutSecurity: options.withoutSecurity,
    isOutage: config.zendesk ? isVendorOutage : isSqliteOutage,
    createConnector: (telemetry, logger, metrics) => {
      let connector: SupportConnector;
      if (config.zendesk) {
        const desk = createZendeskConnector({
          ...config.zendesk,
          telemetry,
          resilience: createResilience('support', config.zendesk.policy, { logger }),
        });
        exportApiBudget(metrics, 'support', () => desk.apiBudget());
        connector = desk;
      } else {
        connector = createEmbeddedSupportConnector(options.database ?? openEmbeddedDatabase(config.connector, SUPPORT_SCHEMA), telemetry);
      }
      return options.wrapConnector ? options.wrapConnector(connector) : connector;
    },
    createServer,
    createContext: createContextFactory,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('support', () => startSupport(loadSupportConfig()));
}
