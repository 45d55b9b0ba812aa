import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../../platform/http-server.ts';
import { exportApiBudget } from '../../../platform/metrics.ts';
import { runMain } from '../../../platform/process.ts';
import { createResilience, isVendorOutage } from '../../../platform/resilience.ts';
import { tokenSourceOf } from '../../../platform/vendor-config.ts';
import { isSqliteOutage, type Database } from '../../../platform/sqlite.ts';
import { openEmbeddedDatabase } from '../../../platform/subgraph-config.ts';
import { startSubgraph, type SubgraphOptions } from '../../../platform/subgraph.ts';
import { loadCrmConfig, type CrmConfig } from './config.ts';
import { createEmbeddedCrmConnector } from './connectors/embedded/index.ts';
import { CRM_SCHEMA } from './connectors/embedded/tables.ts';
import { createSalesforceConnector } from './connectors/salesforce.ts';
import type { CrmConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { crmChangeFeed } from './feed/index.ts';
import { createServer } from './server.ts';

/** Picks the CRM adapter the configuration names, then serves the crm subgraph. */
export async function startCrm(config: CrmConfig, options: SubgraphOptions<Database, CrmConnector> = {}): Promise<RunningService> {
  const salesforce = config.salesforce;
  const tokens = salesforce ? tokenSourceOf(salesforce.token, 'crm') : null;
  // A token the identity provider refuses now is fetched again on the first 401; start-up does not wait on it.
  const initialToken = tokens ? await tokens().catch(() => '') : '';
  // The embedded CRM's file, opened with the connector: its change log feeds the change feed.
  let database: Database | null = null;
  return startSubgraph({
    name: 'crm',
    config,
    logger: options.logger,
    clock: options.clock,
    internalPublicKey: options.internalPublicKey,
    withoutSecurity: options.withoutSecurity,
    broker: options.broker,
    changeFeed: crmChangeFeed(config, () => database),
    isOutage: salesforce ? isVendorOutage : isSqliteOutage,
    createConnector: (telemetry, logger, metrics) => {
      let connector: CrmConnector;
      if (salesforce && tokens) {
        const org = createSalesforceConnector({
          instanceUrl: salesforce.instanceUrl,
          apiVersion: salesforce.apiVersion,
          auth: { kind: 'accessToken', accessToken: initialToken, refresh: tokens.refresh },
          telemetry,
          resilience: createResilience('crm', salesforce.policy, { logger, metrics }),
        });
        exportApiBudget(metrics, 'crm', () => org.apiUsage());
        connector = org;
      } else {
        database = options.database ?? openEmbeddedDatabase(config.connector, CRM_SCHEMA);
        connector = createEmbeddedCrmConnector(database, telemetry);
      }
      return options.wrapConnector ? options.wrapConnector(connector) : connector;
    },
    createServer,
    createContext: createContextFactory,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('crm', () => startCrm(loadCrmConfig()));
}
