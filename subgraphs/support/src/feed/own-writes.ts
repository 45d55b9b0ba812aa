import type { EventBroker } from '../../../../platform/events/broker.ts';
import type { CanonicalEvent } from '../../../../platform/events/cloudevent.ts';
import type { Logger } from '../../../../platform/logger.ts';
import type { CaseRecord, SupportConnector } from '../connectors/types.ts';
import { caseEvents, customerEvent, type FeedCounter } from './events.ts';

/** Where Concord's own writes are told, known once the subgraph has opened its broker. */
export interface OwnWriteTarget {
  readonly broker: EventBroker;
  readonly source: string;
  readonly logger: Logger;
  readonly counter?: FeedCounter | undefined;
}

/**
 * Publishes the event of each of Concord's own writes to a vendor desk right after the desk
 * confirmed it (recordCaseUpdate, setEntitlement, recordInstalledBase), so caches drop what it
 * changed at once rather than when the desk's webhook arrives. A case's version is the desk's
 * (the ticket's updated_at after the write), so the webhooks Zendesk sends for the same update
 * are the same event. A broker that refuses does not fail the write,
 * which the desk has made: the webhook or the export tells it later.
 *
 * Only for the Zendesk adapter: the embedded desk's writes are in its change log already
 * (connectors/embedded/tables.ts), and publishing them here too would tell them twice.
 */
export function ownWritePublisher(): { wrap(connector: SupportConnector): SupportConnector; attach(target: OwnWriteTarget): void } {
  let target: OwnWriteTarget | null = null;

  async function publish(build: (source: string) => CanonicalEvent[]): Promise<void> {
    if (!target) return;
    const { broker, source, logger, counter } = target;
    let events: CanonicalEvent[] = [];
    try {
      events = build(source);
      await broker.publish(events);
      counter?.inc({ feed: 'own-write', outcome: 'published' }, events.length);
    } catch (error) {
      counter?.inc({ feed: 'own-write', outcome: 'refused' }, events.length);
      logger.warn(
        { err: error, events: events.map((event) => event.subject) },
        "change feed: a write of Concord's was made in the desk, but its event was not published (the desk's webhook tells it)",
      );
    }
  }

  const versionOf = (instant: string | null | undefined) => {
    const at = instant ? Date.parse(instant) : Number.NaN;
    return Number.isNaN(at) ? Date.now() : at;
  };

  return {
    attach(next) {
      target = next;
    },
    wrap(connector) {
      return {
        ...connector,
        async applyCaseUpdate(update) {
          const record: CaseRecord | null = await connector.applyCaseUpdate(update);
          if (record) {
            const changes = [...(update.internalNote ? ['comment'] : []), ...(update.status ? ['status'] : [])];
            await publish((source) =>
              caseEvents(
                {
                  caseId: record.id,
                  customerId: record.customerId,
                  status: record.status,
                  priority: record.priority,
                  assigneeId: record.assigneeId,
                  updatedAt: record.updatedAt,
                },
                changes.length ? changes : ['updatedAt'],
                { source, version: versionOf(record.updatedAt) },
              ),
            );
          }
          return record;
        },
        // The desk sends no webhook for its custom object records, so no version of the desk's need
        // match: the clock's, in ms, which no second-stamped change of the organization (its tags,
        // told by their webhook) shares.
        async setEntitlement(update) {
          const entitlements = await connector.setEntitlement(update);
          if (entitlements) await publish((source) => [customerEvent(update.customerId, ['entitlement'], { source, version: Date.now() })]);
          return entitlements;
        },
        async recordInstalledBase(update) {
          const recorded = await connector.recordInstalledBase(update);
          if (recorded)
            await publish((source) => [customerEvent(update.customerId, ['installed_product'], { source, version: Date.now() })]);
          return recorded;
        },
      };
    },
  };
}
