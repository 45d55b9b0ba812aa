import type { Logger } from '../logger.ts';
import type { CanonicalEvent } from './cloudevent.ts';

export type EventHandler = (event: CanonicalEvent) => void | Promise<void>;

/** Where canonical events are published and from where consumers take them. */
export interface EventBroker {
  /** Resolves once the broker has taken every event (at least once: a consumer dedupes by id). */
  publish(events: readonly CanonicalEvent[]): Promise<void>;
  /** Calls `handler` for every event published after it subscribed whose type matches (`*` suffix: a prefix). */
  subscribe(types: string | readonly string[], handler: EventHandler): () => void;
  close(): Promise<void>;
}

const matches = (patterns: readonly string[], type: string) =>
  patterns.some((pattern) => (pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : pattern === type));

/**
 * The embedded default: events go to the subscribers of this process, in the order published.
 * A handler that throws is logged and does not stop the others.
 */
export function inProcessBroker(logger: Logger): EventBroker {
  const subscribers = new Set<{ patterns: readonly string[]; handler: EventHandler }>();
  return {
    async publish(events) {
      for (const event of events)
        for (const subscriber of [...subscribers])
          if (matches(subscriber.patterns, event.type))
            try {
              await subscriber.handler(event);
            } catch (error) {
              logger.error({ err: error, eventId: event.id, type: event.type }, 'event handler failed');
            }
    },
    subscribe(types, handler) {
      const entry = { patterns: typeof types === 'string' ? [types] : types, handler };
      subscribers.add(entry);
      return () => void subscribers.delete(entry);
    },
    async close() {
      subscribers.clear();
    },
  };
}
