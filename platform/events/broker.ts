import type { CanonicalEvent } from './cloudevent.ts';

/**
 * Where canonical events are published and from where consumers take them. Two brokers keep
 * this contract: the embedded default (embedded-broker.ts: a log in a SQLite file that the
 * services of one machine share, so `npm start` stays one command) and NATS JetStream
 * (nats-broker.ts: a durable stream per domain).
 *
 * Delivery is at least once. An event's `id` is its identity: the broker drops a second publish
 * of an id it holds (the outbox relay resends after a lost acknowledgement), and a consumer that
 * is handed an id again (a redelivery after a crash between its work and its acknowledgement)
 * applies it once (see `onceEach`).
 */
export interface EventBroker {
  readonly kind: 'embedded' | 'nats';
  /** Resolves once the broker has stored every event; rejects when it could not (the caller keeps them and sends again). */
  publish(events: readonly CanonicalEvent[]): Promise<void>;
  /**
   * A durable consumer: the broker remembers, under `name`, the last event the handler
   * finished, so a consumer stopped or killed resumes after it. Events come one at a time in
   * the order published (within a domain); the next comes when the handler resolved (the
   * acknowledgement). A handler that throws gets the same event again after a backoff.
   */
  consume(options: ConsumerOptions, handler: EventHandler): Promise<EventConsumer>;
  /**
   * Live: every matching event published from now on, not remembered (a console's push; a
   * subscriber that was away does not get what it missed).
   */
  subscribe(types: TypePatterns, handler: EventHandler): Promise<() => Promise<void>>;
  /** The events stored, oldest first, for operators (`npm run events`): since a time or after a position. */
  read(options: ReadOptions): Promise<StoredEvent[]>;
  /** Moves a durable consumer (made if unknown) so that it next gets the events from `startAt` on: a replay. */
  rewind(name: string, types: TypePatterns, startAt: StartAt): Promise<void>;
  /** The durable consumers the broker knows, with what each has not yet acknowledged. */
  consumers(): Promise<ConsumerState[]>;
  close(): Promise<void>;
}

/** Exact types (`concord.case.updated`), prefixes (`concord.case.*`) or every type (`*`). */
export type TypePatterns = string | readonly string[];

export type EventHandler = (event: CanonicalEvent) => void | Promise<void>;

/**
 * Where a consumer the broker does not know yet starts (or a rewind moves it): with events
 * published after it was made (default), all stored, at a time, or after a position
 * (`StoredEvent.position`, e.g. the last one a consumer is known to have applied). On NATS a
 * position is in one domain's stream: the consumer's other domains are left where they are.
 */
export type StartAt = 'new' | 'all' | { readonly time: Date } | { readonly after: string };

export interface ConsumerOptions {
  /** The durable name (letters, digits, `-`, `_`): the same name resumes where it acknowledged, across restarts. */
  readonly name: string;
  readonly types: TypePatterns;
  readonly startAt?: StartAt;
}

export interface EventConsumer {
  /** Stops taking events; resolves once the handler running now (if any) has finished and been acknowledged. */
  stop(): Promise<void>;
}

export interface ReadOptions {
  readonly types?: TypePatterns;
  readonly since?: Date;
  /** Only events stored after this position (`StoredEvent.position`). */
  readonly after?: string;
  readonly limit?: number;
}

export interface StoredEvent {
  readonly event: CanonicalEvent;
  /** Where the broker holds it: opaque to callers, ordered within a domain (`read({ after })` takes it). */
  readonly position: string;
}

export interface ConsumerState {
  readonly name: string;
  /** Events stored that the consumer has not yet acknowledged. */
  readonly pending: number;
}

/** Consumer names are broker identifiers (a JetStream durable name has no dots, spaces or wildcards). */
export const CONSUMER_NAME = /^[A-Za-z0-9_-]{1,128}$/;

export function patternsOf(types: TypePatterns): readonly string[] {
  return typeof types === 'string' ? [types] : types;
}

export const matches = (patterns: readonly string[], type: string): boolean =>
  patterns.some((pattern) => pattern === '*' || (pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : pattern === type));

/** The domain of a type, its second part (`concord.case.updated` → `case`): a JetStream stream holds one. */
export function domainOf(type: string): string {
  const domain = type.split('.')[1];
  if (!type.startsWith('concord.') || !domain) throw new Error(`event type ${type} is not concord.<domain>.<fact>`);
  return domain;
}

/**
 * A handler that applies each event id once, remembering the last `size` ids: a redelivery (the
 * broker's at-least-once) or a second publish reaching a consumer passes through as a no-op.
 */
export function onceEach(handler: EventHandler, size = 10_000): EventHandler {
  const seen = new Set<string>();
  return async (event) => {
    if (seen.has(event.id)) return;
    await handler(event);
    seen.add(event.id);
    if (seen.size > size) seen.delete(seen.values().next().value!);
  };
}
