import { join } from 'node:path';
import type { ChangeFeed, ChangeFeedDeps } from '../../../../platform/events/source.ts';
import type { Database } from '../../../../platform/sqlite.ts';
import type { SupportConfig } from '../config.ts';
import type { SupportConnector } from '../connectors/types.ts';
import type { ZendeskChangeReads } from '../connectors/zendesk.ts';
import { embeddedDeskFeed } from './embedded.ts';
import { feedCounter } from './events.ts';
import type { ownWritePublisher } from './own-writes.ts';
import { zendeskFeed } from './zendesk.ts';

/** The file in DATA_DIR where the Zendesk export's cursor is kept. */
export const SUPPORT_FEED_FILE = 'support-feed.sqlite';

/** What the connector the subgraph picked brings to its feed: the embedded database, or the Zendesk adapter's reads. */
export type DeskSource =
  | { readonly kind: 'embedded'; readonly db: Database }
  | { readonly kind: 'zendesk'; readonly reads: ZendeskChangeReads; readonly ownWrites: ReturnType<typeof ownWritePublisher> }
  /** A desk whose own changes are not read (yet): only Concord's own writes are told. */
  | { readonly kind: 'own-writes'; readonly ownWrites: ReturnType<typeof ownWritePublisher> };

/**
 * The support desk's change feed, for the connector configured: the embedded desk's change log
 * (feed/embedded.ts), or Zendesk's webhook, incremental export and Concord's own writes
 * (feed/zendesk.ts, feed/own-writes.ts). Everything it tells is a canonical event on the
 * broker: concord.case.updated, concord.case.escalated, concord.customer.updated.
 */
export function supportChangeFeed(config: SupportConfig, deps: ChangeFeedDeps<SupportConnector>, desk: DeskSource): ChangeFeed {
  const counter = feedCounter(deps.metrics);
  const common = { broker: deps.broker, logger: deps.logger, source: deps.source, counter };
  if (desk.kind === 'embedded') return embeddedDeskFeed({ ...common, db: desk.db, pollMs: config.feedPollMs });
  if (desk.kind === 'own-writes') {
    desk.ownWrites.attach(common);
    return {};
  }
  const zendesk = config.zendesk;
  if (!zendesk) throw new Error('the Zendesk change feed needs the Zendesk settings (SUPPORT_CONNECTOR=zendesk)');
  desk.ownWrites.attach(common);
  return zendeskFeed({
    ...common,
    connector: deps.connector,
    reads: desk.reads,
    webhookSecret: zendesk.webhookSecret,
    fieldIds: zendesk.fieldIds,
    exportPoll:
      zendesk.pollSeconds > 0 ? { everyMs: zendesk.pollSeconds * 1000, cursorFile: join(config.dataDir, SUPPORT_FEED_FILE) } : null,
  });
}
