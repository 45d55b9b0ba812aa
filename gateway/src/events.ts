import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { onceEach, type EventBroker, type EventConsumer } from '../../platform/events/broker.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { entitiesOf, type EntityRef } from '../../platform/events/schemas.ts';
import type { Logger } from '../../platform/logger.ts';
import type { EntityCache } from './cache/entity-cache.ts';
import type { SharedFetches } from './shared-fetches.ts';
import type { LiveHub } from './live/hub.ts';

/**
 * The gateway's consumer of canonical events, one per gateway process, durable under its
 * replica's name: for each event it drops the entities the event names (its schema's
 * x-invalidates, by key) from this process's caches, then pushes them to the live subscriptions
 * that follow them, in that order, so a pushed message is read after the drop. A replica that
 * was down resumes after the last event it acknowledged, so it drops what changed meanwhile. An
 * event the cache store could not apply is not acknowledged: it comes again.
 */
export async function consumeEvents(deps: {
  broker: EventBroker;
  name: string;
  cache: EntityCache | null;
  /** Identical fetches in flight: none begun before a change is joined after it (with or without a cache). */
  sharedFetches?: SharedFetches;
  hub: LiveHub;
  entityRefs: ReadonlyMap<string, readonly EntityRef[]>;
  logger: Logger;
  registry: Registry;
}): Promise<EventConsumer> {
  const { broker, cache, sharedFetches, hub, entityRefs, logger, registry } = deps;
  const consumed = new Counter({
    name: 'concord_events_consumed_total',
    help: 'Canonical events this gateway process applied (cache drops, live pushes), by type.',
    labelNames: ['type'],
    registers: [registry],
  });
  const delay = new Histogram({
    name: 'concord_event_delivery_seconds',
    help: 'From an event being recorded to this gateway process applying it.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'concord_event_consumer_lag',
    help: 'Events stored at the broker that a durable consumer has not yet acknowledged, by consumer.',
    labelNames: ['consumer'],
    registers: [registry],
    async collect() {
      this.reset();
      const states = await broker.consumers().catch(() => []);
      for (const state of states) this.set({ consumer: state.name }, state.pending);
    },
  });
  const apply = async (event: CanonicalEvent) => {
    const entities = entitiesOf(event, entityRefs);
    const missed: string[] = [];
    if (entities.size) sharedFetches?.changed();
    if (cache) for (const [type, keys] of entities) if (!(await cache.invalidate(type, keys))) missed.push(`${type} ${keys.join(', ')}`);
    // Pushed all the same (a store that does not answer serves no stale copy either); the drop
    // is tried again with the event, whose second push, if the same, is not sent.
    hub.dispatch(event);
    if (missed.length) throw new Error(`the cache store did not drop ${missed.join('; ')}`);
    consumed.inc({ type: event.type });
    delay.observe(Math.max(0, Date.now() - Date.parse(event.time)) / 1000);
    logger.debug({ eventId: event.id, type: event.type, subject: event.subject, correlationId: event.correlationid }, 'event applied');
  };
  return broker.consume({ name: deps.name, types: '*', startAt: 'new' }, onceEach(apply));
}
