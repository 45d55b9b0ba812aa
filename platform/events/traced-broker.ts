import type { CanonicalEvent } from './cloudevent.ts';
import type { EventBroker, EventHandler } from './broker.ts';
import { contextFrom, failSpan, inSpan, SpanKind, tracer, tracingEnabled } from '../tracing.ts';

/**
 * A broker whose publications and deliveries are traced, as OpenTelemetry's messaging
 * conventions say: a producer span `send <type>` per event published, the child of the trace
 * the event carries (its `traceparent` extension, set when it was recorded), and a consumer span
 * `process <type>` per event a handler is given, the child of the same trace. So the trace of a
 * request goes on through the outbox, the broker and every consumer. With tracing off, the
 * broker is returned as it is.
 */
export function tracedBroker(broker: EventBroker, system: string): EventBroker {
  if (!tracingEnabled()) return broker;
  const attributesOf = (event: CanonicalEvent, operation: 'send' | 'process') => ({
    'messaging.system': system,
    'messaging.operation.type': operation,
    'messaging.destination.name': event.type,
    'messaging.message.id': event.id,
    'cloudevents.event_id': event.id,
    'cloudevents.event_type': event.type,
    'cloudevents.event_source': event.source,
  });
  const traced =
    (name: string, handler: EventHandler): EventHandler =>
    (event) =>
      inSpan(
        `process ${event.type}`,
        {
          kind: SpanKind.CONSUMER,
          parent: contextFrom(event as unknown as Record<string, unknown>),
          attributes: { ...attributesOf(event, 'process'), 'messaging.consumer.group.name': name },
        },
        () => handler(event),
      );
  return {
    kind: broker.kind,
    async publish(events) {
      const spans = events.map((event) =>
        tracer().startSpan(
          `send ${event.type}`,
          { kind: SpanKind.PRODUCER, attributes: attributesOf(event, 'send') },
          contextFrom(event as unknown as Record<string, unknown>),
        ),
      );
      try {
        await broker.publish(events);
      } catch (error) {
        for (const span of spans) failSpan(span, error);
        throw error;
      } finally {
        for (const span of spans) span.end();
      }
    },
    consume: (options, handler) => broker.consume(options, traced(options.name, handler)),
    subscribe: (types, handler) => broker.subscribe(types, traced('live', handler)),
    read: (options) => broker.read(options),
    rewind: (name, types, startAt) => broker.rewind(name, types, startAt),
    consumers: () => broker.consumers(),
    close: () => broker.close(),
  };
}
