import { join } from 'node:path';
import { changeLogFeed } from '../../../../platform/events/sqlite-change-log.ts';
import type { ChangeFeed, ChangeFeedDeps } from '../../../../platform/events/source.ts';
import type { RawRoute } from '../../../../platform/http-server.ts';
import type { Database } from '../../../../platform/sqlite.ts';
import type { ErpConfig } from '../config.ts';
import type { ErpConnector } from '../connectors/types.ts';
import { businessCentralHook } from './businessCentral.ts';
import { embeddedErpDrafts } from './embedded.ts';
import { erpPoller } from './poller.ts';
import { openErpFeedState, type ErpFeedState } from './state.ts';

/** The Business Central feed's state file, in DATA_DIR. */
export const ERP_FEED_STATE_FILE = 'erp-feed.sqlite';

/**
 * The ERP's change feed: over the embedded ERP, its change log (every write to the file, read
 * every ERP_FEED_POLL_MS); over Business Central, the webhook notifications at
 * `POST /hooks/business-central` (with BC_WEBHOOK_CLIENT_STATE) and the poller (ERP_POLL_SECONDS),
 * which share their state in DATA_DIR/erp-feed.sqlite. Undefined when there is nothing to run:
 * the subgraph then opens no broker.
 */
export function erpChangeFeed(
  config: ErpConfig,
  /** The embedded ERP's database, once the connector opened it; null over Business Central. */
  database: () => Database | null,
): ((deps: ChangeFeedDeps<ErpConnector>) => ChangeFeed) | undefined {
  const { feed, businessCentral } = config;
  // S/4HANA's changes are not read: over it the ERP publishes no change events.
  if (config.connectorKind === 's4hana') return undefined;
  if (businessCentral && !feed.businessCentralClientState && feed.pollSeconds === 0) return undefined;
  return (deps) => {
    const db = database();
    const parts: ChangeFeed[] = [];
    const routes = new Map<string, RawRoute>();
    let state: ErpFeedState | null = null;
    if (db) {
      parts.push(
        changeLogFeed({
          db,
          broker: deps.broker,
          source: deps.source,
          logger: deps.logger,
          pollMs: feed.pollMs,
          toDrafts: embeddedErpDrafts(deps.connector),
        }),
      );
    } else {
      state = openErpFeedState(join(config.dataDir, ERP_FEED_STATE_FILE));
      const common = { connector: deps.connector, broker: deps.broker, state, source: deps.source, logger: deps.logger };
      if (feed.businessCentralClientState) {
        routes.set(
          '/hooks/business-central',
          businessCentralHook({ ...common, clientState: feed.businessCentralClientState, companyId: businessCentral?.companyId ?? null }),
        );
      }
      if (feed.pollSeconds > 0) parts.push(erpPoller({ ...common, intervalMs: feed.pollSeconds * 1_000 }));
    }
    return {
      routes,
      async start() {
        for (const part of parts) await part.start?.();
      },
      async stop() {
        await Promise.all(parts.map((part) => part.stop?.()));
        state?.close();
      },
    };
  };
}
