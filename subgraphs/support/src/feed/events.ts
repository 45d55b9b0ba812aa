import { Counter } from 'prom-client';
import type { EventBroker } from '../../../../platform/events/broker.ts';
import type { CanonicalEvent, EventDraft } from '../../../../platform/events/cloudevent.ts';
import { sourceEvent } from '../../../../platform/events/source.ts';
import type { Metrics } from '../../../../platform/metrics.ts';
import type { CasePriority, CaseStatus } from '../connectors/types.ts';

/** A case as its events tell it: the keys of concord.case.updated besides what changed. */
export interface CaseState {
  readonly caseId: string;
  readonly customerId: string | null;
  readonly status: CaseStatus;
  readonly priority: CasePriority;
  readonly updatedAt: string;
  /** The agent it is assigned to (Agent.id), when the reading of the case told it; null: none. */
  readonly assigneeId?: string | null;
}

/** Where a feed's events came from, for the counter and the logs. */
export type FeedName = 'embedded' | 'webhook' | 'export' | 'own-write';

export type FeedCounter = Counter<'feed' | 'outcome'>;

/**
 * `concord_change_feed_events_total{feed, outcome}`: events the desk's change feed built and
 * handed to the broker (`published`) or that the broker refused (`refused`: they are sent again,
 * by the next poll or by the desk's resend).
 */
export function feedCounter(metrics: Metrics): FeedCounter {
  return new Counter({
    name: 'concord_change_feed_events_total',
    help: "Canonical events the support desk's change feed handed to the broker, by feed (embedded, webhook, export, own-write) and outcome (published, refused).",
    labelNames: ['feed', 'outcome'],
    registers: [metrics.registry],
  });
}

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A desk timestamp as the schemas take it: kept when it is already UTC ISO 8601, else normalized; null when unreadable. */
export function instantOf(value: string | null | undefined): string | null {
  if (!value) return null;
  if (INSTANT.test(value)) return value;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : new Date(at).toISOString();
}

/**
 * What changed, each name once, in the order told. `updatedAt` moves with every change, so it
 * is named only when nothing else the graph shows changed.
 */
export function changeList(changes: Iterable<string>): string[] {
  const names = [...new Set([...changes].filter((name) => name !== ''))];
  return names.length > 1 ? names.filter((name) => name !== 'updatedAt') : names;
}

/**
 * The drafts of a change of a case: concord.case.updated, and concord.case.escalated beside it
 * when the change raised its priority to URGENT (with the same data, `priority` among the
 * changes).
 */
export function caseDrafts(state: CaseState, changes: Iterable<string>, options: { readonly escalated?: boolean } = {}): EventDraft[] {
  const told = changeList(changes);
  const data = {
    caseId: state.caseId,
    customerId: state.customerId || null,
    status: state.status,
    priority: state.priority,
    ...(state.assigneeId !== undefined ? { assigneeId: state.assigneeId } : {}),
    changes: told,
    updatedAt: instantOf(state.updatedAt) ?? new Date().toISOString(),
  };
  const subject = `case/${state.caseId}`;
  const drafts: EventDraft[] = [{ type: 'concord.case.updated', subject, data }];
  if (options.escalated && state.priority === 'URGENT')
    drafts.push({
      type: 'concord.case.escalated',
      subject,
      data: { ...data, changes: told.includes('priority') ? told : ['priority', ...told] },
    });
  return drafts;
}

/** The draft of a change of what the desk holds about a customer (its organization, entitlements, installed base). */
export function customerDraft(customerId: string, changes: Iterable<string>): EventDraft {
  const told = changeList(changes);
  return {
    type: 'concord.customer.updated',
    subject: `customer/${customerId}`,
    data: told.length ? { customerId, changes: told } : { customerId },
  };
}

/**
 * The events of a change of a case (caseDrafts). `version` is the desk's version of the change
 * (the ticket's updated_at in ms): the same change told twice is the same event.
 */
export function caseEvents(
  state: CaseState,
  changes: Iterable<string>,
  context: { readonly source: string; readonly version: number; readonly escalated?: boolean; readonly at?: Date },
): CanonicalEvent[] {
  const at = context.at ?? new Date();
  return caseDrafts(state, changes, context).map((draft) => sourceEvent(draft, { source: context.source, version: context.version, at }));
}

/** The event of a change of what the desk holds about a customer (customerDraft). */
export function customerEvent(
  customerId: string,
  changes: Iterable<string>,
  context: { readonly source: string; readonly version: number; readonly at?: Date },
): CanonicalEvent {
  return sourceEvent(customerDraft(customerId, changes), {
    source: context.source,
    version: context.version,
    at: context.at ?? new Date(),
  });
}

/** The broker, counting what passes through it for one feed: published, or refused (sent again later). */
export function countedBroker(broker: EventBroker, counter: FeedCounter | undefined, feed: FeedName): EventBroker {
  return {
    kind: broker.kind,
    async publish(events) {
      try {
        await broker.publish(events);
      } catch (error) {
        counter?.inc({ feed, outcome: 'refused' }, events.length);
        throw error;
      }
      counter?.inc({ feed, outcome: 'published' }, events.length);
    },
    consume: (options, handler) => broker.consume(options, handler),
    subscribe: (types, handler) => broker.subscribe(types, handler),
    read: (options) => broker.read(options),
    rewind: (name, types, startAt) => broker.rewind(name, types, startAt),
    consumers: () => broker.consumers(),
    close: () => broker.close(),
  };
}
