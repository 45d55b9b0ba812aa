import { randomUUID } from 'node:crypto';
import { traceCarrier } from '../tracing.ts';

/**
 * A canonical change event: CloudEvents 1.0 in its JSON form, with two extension attributes,
 * `correlationid` (the request that caused it) and `sequence` (its place among the events of
 * its subject, from 1: consumers order and deduplicate by it), and, with tracing on, the
 * distributed tracing extension's `traceparent` (and `tracestate`).
 */
export interface CanonicalEvent<D = unknown> {
  readonly specversion: '1.0';
  /** Unique per event: a consumer that sees an id twice applies it once. */
  readonly id: string;
  /** Who tells: `concord/processes`, `concord/crm`, … */
  readonly source: string;
  /** `concord.<entity>.<fact>`, e.g. `concord.order.created`; its schema is schema/events/<type>.json. */
  readonly type: string;
  /** The entity in canonical terms: `order/SO-200001`, `customer/C10001`. */
  readonly subject: string;
  readonly time: string;
  readonly datacontenttype: 'application/json';
  readonly correlationid: string;
  /** Decimal string, as CloudEvents extension values are strings or integers. */
  readonly sequence: string;
  /** CloudEvents' distributed tracing extension: the trace the event was recorded in (with tracing on). */
  readonly traceparent?: string;
  readonly tracestate?: string;
  readonly data: D;
}

/** What an emitter says: the rest (id, time, sequence) is filled in when the event is recorded. */
export interface EventDraft<D = unknown> {
  readonly type: string;
  readonly subject: string;
  readonly data: D;
}

export function canonicalEvent<D>(
  draft: EventDraft<D>,
  context: { source: string; correlationId: string; sequence: number; at: Date; id?: string },
): CanonicalEvent<D> {
  return {
    specversion: '1.0',
    id: context.id ?? randomUUID(),
    source: context.source,
    type: draft.type,
    subject: draft.subject,
    time: context.at.toISOString(),
    datacontenttype: 'application/json',
    correlationid: context.correlationId,
    sequence: String(context.sequence),
    ...traceCarrier(),
    data: draft.data,
  };
}
