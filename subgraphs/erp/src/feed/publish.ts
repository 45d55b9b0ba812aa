import type { EventDraft, CanonicalEvent } from '../../../../platform/events/cloudevent.ts';
import { InvalidEventError } from '../../../../platform/events/schemas.ts';
import { sourceEvent } from '../../../../platform/events/source.ts';
import type { Logger } from '../../../../platform/logger.ts';
import type { ErpChangedRecord } from '../connectors/types.ts';
import { draftOf } from './events.ts';

/** A draft with the version and time of the change it tells. */
export interface VersionedDraft {
  readonly draft: EventDraft;
  /** The record's lastModifiedDateTime in ms. */
  readonly version: number;
  readonly at: Date;
}

/**
 * The draft of a record Business Central returned, versioned by its own lastModifiedDateTime (a
 * notification's time when the record has none), so that a record told by a webhook and by the
 * poller makes the same event; null when neither time is known.
 */
export function versionedDraftOf(changed: ErpChangedRecord, fallback?: string): VersionedDraft | null {
  const version = timeOf(changed.lastModified) ?? timeOf(fallback);
  return version === null ? null : { draft: draftOf(changed), version, at: new Date(version) };
}

/** An ISO date-time in ms; null when it is missing or not a time. */
export function timeOf(value: string | null | undefined): number | null {
  const at = value ? Date.parse(value) : NaN;
  return Number.isFinite(at) && at > 0 ? at : null;
}

/** The canonical events of the drafts; one its schema refuses is a bug, logged and left out. */
export function eventsOf(drafts: readonly VersionedDraft[], source: string, logger: Logger): CanonicalEvent[] {
  const events: CanonicalEvent[] = [];
  for (const { draft, version, at } of drafts) {
    try {
      events.push(sourceEvent(draft, { source, version, at }));
    } catch (error) {
      if (!(error instanceof InvalidEventError)) throw error;
      logger.error({ err: error, type: draft.type, subject: draft.subject }, 'business central change left out: it makes no valid event');
    }
  }
  return events;
}
