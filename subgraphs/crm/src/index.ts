import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../../platform/http-server.ts';
import { runMain } from '../../../platform/process.ts';
import { isSqliteOutage, type Database } from '../../../platform/sqlite.ts';
import { openEmbeddedDatabase } from '../../../platform/subgraph-config.ts';
import { startSubgraph, type SubgraphOptions } from '../../../platform/subgraph.ts';
import { loadCrmConfig, type CrmConfig } from './config.ts';
import { createEmbeddedCrmConnector } from './connectors/embedded/index.ts';
import type { CrmConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { createServer } from './server.ts';

/** Picks the CRM adapter the configuration names, then serves the crm subgraph. */
export function startCrm(config: CrmConfig, options: SubgraphOptions<Database, CrmConnector> = {}): Promise<RunningService> {
  return startSubgraph({
    name: 'crm',
    config,
    logger: options.logger,
    clock: options.clock,
    internalPublicKey: options.internalPublicKey,
    withoutSecurity: options.withoutSecurity,
    isOutage: isSqliteOutage,
    createConnector: (telemetry) => {
      const connector = createEmbeddedCrmConnector(options.database ?? openEmbeddedDatabase(config.connector), telemetry);
      return options.wrapConnector ? options.wrapConnector(connector) : connector;
    },
    createServer,
    createContext: createContextFactory,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('crm', () => startCrm(loadCrmConfig()));
}
