import type { EventBroker } from '../../../../platform/events/broker.ts';
import { inBackground } from '../../../../platform/api-budget.ts';
import type { ChangeFeed } from '../../../../platform/events/source.ts';
import type { Logger } from '../../../../platform/logger.ts';
import type { ErpChangeKind, ErpConnector } from '../connectors/types.ts';
import { eventsOf, timeOf, versionedDraftOf, type VersionedDraft } from './publish.ts';
import type { ErpFeedState } from './state.ts';

/** What the poller reads, in this order: a customer before the orders that may name it. */
const KINDS: readonly ErpChangeKind[] = ['customer', 'order', 'shipment', 'invoice'];

/**
 * How far before its cursor each poll reads again. A record's lastModifiedDateTime is set when it
 * is written and it is seen once its transaction commits, which can be later than a record
 * modified after it; reading the last minute again catches such a record, and what was published
 * already makes the same events (the same ids), which the broker stores once.
 */
export const POLL_LOOKBACK_MS = 60_000;

/**
 * The ERP poller, for a Business Central company whose webhooks cannot reach Concord: every
 * `intervalMs`, the customers, sales orders, shipments and invoices modified after the kind's
 * cursor (`$filter=lastModifiedDateTime gt …`), published as the webhook publishes them, then the
 * cursor moved to the latest modification time published. The cursors are durable (erp-feed.sqlite);
 * the first run starts them now. A poll that fails (Business Central or the broker) moves nothing
 * and the next one reads the same again.
 */
export function erpPoller(deps: {
  readonly connector: ErpConnector;
  readonly broker: EventBroker;
  readonly state: ErpFeedState;
  readonly source: string;
  readonly logger: Logger;
  readonly intervalMs: number;
  readonly lookbackMs?: number;
}): ChangeFeed & { pollOnce(): Promise<number> } {
  const { connector, broker, state, source, logger, intervalMs } = deps;
  const lookbackMs = deps.lookbackMs ?? POLL_LOOKBACK_MS;

  async function pollKind(kind: ErpChangeKind): Promise<number> {
    const cursor = state.cursor(kind) ?? new Date().toISOString();
    const after = new Date(Date.parse(cursor) - lookbackMs).toISOString();
    const records = await connector.changedRecordsAfter(kind, after);
    const drafts = records.map((changed) => versionedDraftOf(changed)).filter((draft): draft is VersionedDraft => draft !== null);
    const events = eventsOf(drafts, source, logger);
    if (events.length) await broker.publish(events);
    state.remember(records);
    const latest = Math.max(Date.parse(cursor), ...records.map((changed) => timeOf(changed.lastModified) ?? 0));
    state.setCursor(kind, new Date(latest).toISOString());
    return events.length;
  }

  async function pollOnce(): Promise<number> {
    let published = 0;
    for (const kind of KINDS) published += await pollKind(kind);
    return published;
  }

  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let failing = false;
  const loop = () => {
    timer = null;
    running = inBackground(pollOnce).then(
      (published) => {
        if (failing) logger.info('erp poller: reading Business Central again');
        failing = false;
        if (published) logger.debug({ published }, 'erp poller: events published');
      },
      (error: unknown) => {
        if (!failing && !stopped) logger.warn({ err: error }, 'erp poller: changes not published; trying again at the next poll');
        failing = true;
      },
    );
    void running.then(() => {
      running = null;
      if (!stopped) timer = setTimeout(loop, intervalMs);
    });
  };

  return {
    pollOnce,
    async start() {
      if (!stopped) return;
      stopped = false;
      // The cursors of a first run start now: what changed before is not told.
      const now = new Date().toISOString();
      for (const kind of KINDS) if (state.cursor(kind) === null) state.setCursor(kind, now);
      timer = setTimeout(loop, 0);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
  };
}
