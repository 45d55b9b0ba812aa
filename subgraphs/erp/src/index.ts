import { pathToFileURL } from 'node:url';
import type { RunningService } from '../../../platform/http-server.ts';
import { runMain } from '../../../platform/process.ts';
import { createResilience, isVendorOutage } from '../../../platform/resilience.ts';
import { tokenSourceOf } from '../../../platform/vendor-config.ts';
import { isSqliteOutage, type Database } from '../../../platform/sqlite.ts';
import { openEmbeddedDatabase } from '../../../platform/subgraph-config.ts';
import { startSubgraph, type SubgraphOptions } from '../../../platform/subgraph.ts';
import { loadErpConfig, type ErpConfig } from './config.ts';
import { createBusinessCentralConnector } from './connectors/businessCentral.ts';
import { createS4HanaConnector } from './connectors/s4hana.ts';
import { createEmbeddedErpConnector } from './connectors/embedded/index.ts';
import { ERP_SCHEMA } from './connectors/embedded/tables.ts';
import type { ErpConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { CustomerOnboarding } from './customers/onboarding.ts';
import { SubscriptionBilling } from './subscriptions/billing.ts';
import { SalesOrders } from './orders/salesOrders.ts';
import { ReturnOrders } from './returns/orders.ts';
import { erpChangeFeed } from './feed/index.ts';
import { createServer } from './server.ts';

export type ErpOptions = SubgraphOptions<Database, ErpConnector>;

/** The running ERP subgraph. */
export type ErpService = RunningService;

/** Picks the ERP adapter the configuration names, then serves the ERP subgraph. */
export async function startErp(config: ErpConfig, options: ErpOptions = {}): Promise<ErpService> {
  // The embedded ERP's file, opened with the connector: its change log feeds the change feed.
  let database: Database | null = null;
  return startSubgraph({
    name: 'erp',
    config,
    logger: options.logger,
    clock: options.clock,
    internalPublicKey: options.internalPublicKey,
    withoutSecurity: options.withoutSecurity,
    broker: options.broker,
    changeFeed: erpChangeFeed(config, () => database),
    isOutage: config.connectorKind === 'embedded' ? isSqliteOutage : isVendorOutage,
    createConnector: (telemetry, logger, metrics) => {
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
          resilience: createResilience('erp', bc.policy, { logger, metrics }),
        });
      } else if (config.s4hana) {
        const s4 = config.s4hana;
        const tokens = s4.auth.kind === 'oauth' ? tokenSourceOf(s4.auth.token, 'erp') : null;
        connector = createS4HanaConnector({
          baseUrl: s4.baseUrl,
          ...(tokens ? { token: tokens, refreshToken: tokens.refresh } : {}),
          ...(s4.auth.kind === 'basic' ? { basic: { user: s4.auth.user, password: s4.auth.password } } : {}),
          companyCurrency: s4.companyCurrency,
          telemetry,
          resilience: createResilience('erp', s4.policy, { logger, metrics }),
        });
      } else {
        database = options.database ?? openEmbeddedDatabase(config.connector, ERP_SCHEMA);
        connector = createEmbeddedErpConnector(database, telemetry);
      }
      return options.wrapConnector ? options.wrapConnector(connector) : connector;
    },
    createServer,
    createContext: (deps) =>
      createContextFactory({
        ...deps,
        returns: new ReturnOrders({ erp: deps.connector, clock: deps.clock }),
        salesOrders: new SalesOrders({ erp: deps.connector, clock: deps.clock }),
        onboarding: new CustomerOnboarding({ erp: deps.connector }),
        billing: new SubscriptionBilling({ erp: deps.connector }),
      }),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('erp', () => startErp(loadErpConfig()));
}
