import { changeLogFeed } from '../../../../platform/events/sqlite-change-log.ts';
import type { ChangeFeed, ChangeFeedDeps } from '../../../../platform/events/source.ts';
import type { RawRoute } from '../../../../platform/http-server.ts';
import type { Database } from '../../../../platform/sqlite.ts';
import type { CrmConfig } from '../config.ts';
import type { CrmConnector } from '../connectors/types.ts';
import { embeddedCrmDrafts } from './embedded.ts';
import { salesforceHook } from './salesforce.ts';

/**
 * The CRM's change feed: over the embedded CRM, its change log (every write to the file, read
 * every CRM_FEED_POLL_MS); over Salesforce, the Change Data Capture events a relay posts to
 * `POST /hooks/salesforce` (with SALESFORCE_WEBHOOK_SECRET). Undefined when there is nothing to run:
 * the subgraph then opens no broker.
 */
export function crmChangeFeed(
  config: CrmConfig,
  /** The embedded CRM's database, once the connector opened it; null over Salesforce. */
  database: () => Database | null,
): ((deps: ChangeFeedDeps<CrmConnector>) => ChangeFeed) | undefined {
  const { feed } = config;
  if (config.salesforce && !feed.salesforceWebhookSecret) return undefined;
  return (deps) => {
    const db = database();
    const parts: ChangeFeed[] = [];
    const routes = new Map<string, RawRoute>();
    if (db) {
      parts.push(
        changeLogFeed({
          db,
          broker: deps.broker,
          source: deps.source,
          logger: deps.logger,
          pollMs: feed.pollMs,
          toDrafts: embeddedCrmDrafts(deps.connector),
        }),
      );
    }
    if (feed.salesforceWebhookSecret) {
      routes.set(
        '/hooks/salesforce',
        salesforceHook({
          secret: feed.salesforceWebhookSecret,
          connector: deps.connector,
          broker: deps.broker,
          source: deps.source,
          logger: deps.logger,
        }),
      );
    }
    return {
      routes,
      async start() {
        for (const part of parts) await part.start?.();
      },
      async stop() {
        await Promise.all(parts.map((part) => part.stop?.()));
      },
    };
  };
}
