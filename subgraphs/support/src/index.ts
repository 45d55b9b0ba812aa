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
import { createServiceNowConnector, type ServiceNowAuth } from './connectors/servicenow.ts';
import { createFreshdeskConnector } from './connectors/freshdesk.ts';
import { tokenSourceOf } from '../../../platform/vendor-config.ts';
import type { SupportConnector } from './connectors/types.ts';
import { createContextFactory } from './context.ts';
import { supportChangeFeed, type DeskSource } from './feed/index.ts';
import { ownWritePublisher } from './feed/own-writes.ts';
import { createServer } from './server.ts';

/**
 * Picks the support desk adapter the configuration names, then serves the support subgraph and
 * its change feed (feed/index.ts), which publishes what changes in the desk to the broker.
 */
export async function startSupport(
  config: SupportConfig,
  options: SubgraphOptions<Database, SupportConnector> = {},
): Promise<RunningService> {
  // What the adapter chosen brings to the feed, known once the connector is made.
  let desk: DeskSource | null = null;
  const servicenowAuth = config.servicenow ? await serviceNowAuth(config.servicenow.auth) : null;
  return startSubgraph({
    name: 'support',
    config,
    logger: options.logger,
    clock: options.clock,
    internalPublicKey: options.internalPublicKey,
    withoutSecurity: options.withoutSecurity,
    isOutage: config.zendesk || config.servicenow || config.freshdesk ? isVendorOutage : isSqliteOutage,
    createConnector: (telemetry, logger, metrics) => {
      let connector: SupportConnector;
      if (config.zendesk) {
        const zendesk = createZendeskConnector({
          ...config.zendesk,
          telemetry,
          resilience: createResilience('support', config.zendesk.policy, { logger, metrics }),
        });
        exportApiBudget(metrics, 'support', () => zendesk.apiBudget());
        // Concord's own writes are told as soon as Zendesk confirmed them.
        const ownWrites = ownWritePublisher();
        desk = { kind: 'zendesk', reads: zendesk.changeReads, ownWrites };
        connector = ownWrites.wrap(zendesk);
      } else if (config.servicenow) {
        const servicenow = createServiceNowConnector({
          baseUrl: config.servicenow.baseUrl,
          auth: servicenowAuth!,
          telemetry,
          resilience: createResilience('support', config.servicenow.policy, { logger, metrics }),
        });
        exportApiBudget(metrics, 'support', () => servicenow.apiBudget());
        const ownWrites = ownWritePublisher();
        desk = { kind: 'own-writes', ownWrites };
        connector = ownWrites.wrap(servicenow);
      } else if (config.freshdesk) {
        const freshdesk = createFreshdeskConnector({
          baseUrl: config.freshdesk.baseUrl,
          apiKey: config.freshdesk.apiKey,
          customStatuses: config.freshdesk.customStatuses,
          slaPolicyIds: config.freshdesk.slaPolicyIds,
          customObjects: config.freshdesk.customObjects,
          telemetry,
          resilience: createResilience('support', config.freshdesk.policy, { logger, metrics }),
        });
        exportApiBudget(metrics, 'support', () => freshdesk.apiBudget());
        // Freshdesk's own changes are not read (yet): Concord's own writes are told.
        const ownWrites = ownWritePublisher();
        desk = { kind: 'own-writes', ownWrites };
        connector = ownWrites.wrap(freshdesk);
      } else {
        const db = options.database ?? openEmbeddedDatabase(config.connector, SUPPORT_SCHEMA);
        desk = { kind: 'embedded', db };
        connector = createEmbeddedSupportConnector(db, telemetry);
      }
      return options.wrapConnector ? options.wrapConnector(connector) : connector;
    },
    createServer,
    createContext: createContextFactory,
    changeFeed: (deps) => supportChangeFeed(config, deps, desk!),
    broker: options.broker,
  });
}

/** ServiceNow's credentials: basic auth, or an OAuth token fetched now (client credentials) and renewed once after a 401. */
async function serviceNowAuth(auth: NonNullable<SupportConfig['servicenow']>['auth']): Promise<ServiceNowAuth> {
  if (auth.kind === 'basic') return auth;
  const tokens = tokenSourceOf(auth.token, 'support');
  return { kind: 'oauth', accessToken: await tokens(), renew: () => tokens.refresh() };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('support', () => startSupport(loadSupportConfig()));
}
