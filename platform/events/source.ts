import { createHash } from 'node:crypto';
import type { RawRoute } from '../http-server.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { EventBroker } from './broker.ts';
import { canonicalEvent, type CanonicalEvent, type EventDraft } from './cloudevent.ts';
import { checkEvent } from './schemas.ts';

/**
 * A system's change feed, read in its subgraph: the routes its push notices arrive at
 * (webhooks), and what runs beside them (a poller over the system's incremental API), each
 * turning what the system says into canonical events published to the broker.
 */
export interface ChangeFeed {
  /** POST routes, e.g. `/hooks/zendesk`, served on the subgraph's port. */
  readonly routes?: ReadonlyMap<string, RawRoute>;
  /** Called once the subgraph serves; a poller starts here. */
  start?(): Promise<void>;
  /** Called when the subgraph stops, before the broker is closed. */
  stop?(): Promise<void>;
}

export interface ChangeFeedDeps<TConnector> {
  readonly connector: TConnector;
  readonly broker: EventBroker;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** `concord/crm`, `concord/erp`, `concord/support`: the CloudEvents source of what this feed publishes. */
  readonly source: string;
}

/**
 * A source's event for a change the system reports, its `sequence` the system's own version of
 * the record (a modification time in ms, a change number), its id derived from type, subject
 * and version: the same change told twice (a webhook and the poller, a resend) is the same
 * event, which the broker stores once.
 */
export function sourceEvent<D>(
  draft: EventDraft<D>,
  context: { source: string; version: number; correlationId?: string; at?: Date },
): CanonicalEvent<D> {
  checkEvent(draft);
  const digest = createHash('sha256').update(`${draft.type}\u0000${draft.subject}\u0000${context.version}`).digest('hex');
  // Shaped as a UUID (version 8: custom) so every id of the stream looks alike.
  const id = `${digest.slice(0, 8)}-${digest.slice(8, 12)}-8${digest.slice(13, 16)}-${((parseInt(digest.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${digest.slice(18, 20)}-${digest.slice(20, 32)}`;
  return canonicalEvent(draft, {
    source: context.source,
    correlationId: context.correlationId ?? id,
    sequence: context.version,
    at: context.at ?? new Date(),
    id,
  });
}

/** What a change says besides the record: the fields it changed (in the system's terms), and whether it deleted the record. */
export interface ChangeFacts {
  /** Empty or absent when the system does not tell (a creation, a system that names no fields). */
  readonly changes?: readonly string[] | undefined;
  readonly deleted?: boolean | undefined;
}

/** The facts as an event's data carries them: `changes` when there are some, `deleted` only when true. */
export function factsOf({ changes, deleted }: ChangeFacts): { changes?: string[]; deleted?: true } {
  return { ...(changes?.length ? { changes: [...changes] } : {}), ...(deleted ? { deleted: true } : {}) };
}

/** The present fields of `fields`: an event leaves out what is not known rather than sending undefined. */
export function known<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}
