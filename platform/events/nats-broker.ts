import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type OrderedConsumerOptions,
  type StreamConfig,
} from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';
import {
  CONSUMER_NAME,
  domainOf,
  matches,
  patternsOf,
  type ConsumerOptions,
  type ConsumerState,
  type EventBroker,
  type EventConsumer,
  type EventHandler,
  type StartAt,
  type StoredEvent,
  type TypePatterns,
} from './broker.ts';
import type { CanonicalEvent } from './cloudevent.ts';

/**
 * The domains Concord's events come from (`concord.<domain>.<fact>`): a consumer or live
 * subscriber over `*` (or any pattern wider than one domain) covers the stream of each, made
 * when missing, plus every `CONCORD_` stream the server already holds.
 */
export const EVENT_DOMAINS: readonly string[] = Object.freeze([
  'account',
  'case',
  'contact',
  'customer',
  'invoice',
  'order',
  'return',
  'shipment',
  'subscription',
  'workflow',
  'product',
  'opportunity',
]);

export interface NatsBrokerOptions {
  /** `nats://host:port`, one or more servers of a cluster. */
  readonly servers: readonly string[];
  readonly logger: Logger;
  /** How long each stream keeps its events (a consumer away longer misses them; replays reach this far). */
  readonly streamMaxAgeMs: number;
  /** Copies of each stream in a cluster: 1, 3 or 5. */
  readonly replicas: number;
  /** The connection's name, shown by the server's monitoring (`concord` unless told). */
  readonly name?: string;
  /** First wait before a failed handler gets its event again; doubles up to 30 s. */
  readonly retryBaseMs?: number;
  /**
   * How long the server waits for a delivered event's acknowledgement before it sends the event
   * again (30 s). A handler running longer tells the server it is still working, so this only
   * bounds the wait after a consumer died mid-event or its acknowledgement was lost.
   */
  readonly ackWaitMs?: number;
  /** How long a publish or a JetStream API request waits for the server's answer (10 s). */
  readonly timeoutMs?: number;
  /** Within this window (2 min, at most the max age) the stream drops a second publish of an event id. */
  readonly duplicateWindowMs?: number;
}

const MAX_RETRY_MS = 30_000;
/** Events a read takes from the server per request. */
const READ_BATCH = 256;

/** The JetStream stream holding `domain`'s events: `CONCORD_CASE` for `case`. */
export function streamOf(domain: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(domain)) throw new Error(`event domain ${JSON.stringify(domain)} cannot name a JetStream stream`);
  return `CONCORD_${domain.toUpperCase()}`;
}

const domainOfStream = (stream: string): string => stream.slice('CONCORD_'.length).toLowerCase();

/**
 * The NATS subjects of `domain`'s stream that `patterns` select, for a consumer's filter:
 * `*` and prefixes wider than the domain (`concord.*`) give the whole domain (`concord.case.>`),
 * `concord.case.*` too, an exact type itself, a prefix ending on a dot inside the domain
 * (`concord.case.note.*`) `concord.case.note.>`. A prefix no subject can express
 * (`concord.case.up*`) gives the whole domain; the consumer then also matches each event's type
 * itself. Empty when no pattern reaches the domain.
 */
export function filterSubjects(domain: string, patterns: readonly string[]): string[] {
  const base = `concord.${domain}.`;
  const whole = `${base}>`;
  const subjects = new Set<string>();
  for (const pattern of patterns) {
    if (pattern.endsWith('*')) {
      const prefix = pattern.slice(0, -1);
      if (base.startsWith(prefix)) return [whole];
      if (!prefix.startsWith(base)) continue;
      if (prefix.endsWith('.') && /^[^\s*>]+$/.test(prefix) && !prefix.includes('..')) subjects.add(`${prefix}>`);
      else return [whole];
    } else if (pattern.startsWith(base) && pattern.length > base.length && /^[^\s*>]+$/.test(pattern) && !pattern.endsWith('.')) {
      subjects.add(pattern);
    }
  }
  const wildcards = [...subjects].filter((subject) => subject.endsWith('>'));
  return [...subjects].filter((subject) => !wildcards.some((wild) => wild !== subject && subject.startsWith(wild.slice(0, -1)))).sort();
}

/** The domains patterns name outright (`concord.widget.*`, `concord.case.updated`), known or not. */
function namedDomains(patterns: readonly string[]): string[] {
  const named: string[] = [];
  for (const pattern of patterns) {
    const parts = (pattern.endsWith('*') ? pattern.slice(0, -1) : pattern).split('.');
    if (parts[0] === 'concord' && parts.length >= 3 && parts[1] && /^[A-Za-z0-9_-]+$/.test(parts[1])) named.push(parts[1]);
  }
  return named;
}

const isApiError = (error: unknown, code: number): boolean => error instanceof JetStreamApiError && error.code === code;
const isStreamNotFound = (error: unknown) => isApiError(error, JetStreamApiCodes.StreamNotFound);
const isConsumerNotFound = (error: unknown) => isApiError(error, JetStreamApiCodes.ConsumerNotFound);

/** How a durable on `stream` starts: a position in another stream leaves that stream at new events. */
function deliverOf(startAt: StartAt, stream: string): Pick<ConsumerConfig, 'deliver_policy' | 'opt_start_time' | 'opt_start_seq'> {
  if (startAt === 'all') return { deliver_policy: DeliverPolicy.All };
  if (startAt === 'new') return { deliver_policy: DeliverPolicy.New };
  if ('after' in startAt) {
    const position = parsePosition(startAt.after);
    return position.stream === stream
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: position.sequence + 1 }
      : { deliver_policy: DeliverPolicy.New };
  }
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: startAt.time.toISOString() };
}

/** `CONCORD_CASE:42`: the stream and the event's sequence in it. */
const positionOf = (stream: string, sequence: number) => `${stream}:${sequence}`;

function parsePosition(position: string): { stream: string; sequence: number } {
  const match = /^(CONCORD_[A-Z0-9_-]+):(\d+)$/.exec(position);
  if (!match) throw new Error(`position ${JSON.stringify(position)} is not <stream>:<sequence> (CONCORD_CASE:42)`);
  return { stream: match[1]!, sequence: Number(match[2]) };
}

/**
 * Waits `ms`, or less when `wake()` on the returned handle is called (a consumer's stop()).
 */
interface Sleeper {
  sleep(ms: number): Promise<void>;
  wake(): void;
}

/** A consumer loop: stop() asks it to end, `done` resolves once it has (its handler finished). */
interface Served {
  readonly done: Promise<void>;
  stop(): void;
}

function sleeper(): Sleeper {
  let wake: (() => void) | undefined;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    wake: () => wake?.(),
  };
}

/**
 * The NATS JetStream broker: a stream per domain (`CONCORD_CASE` holds `concord.case.>`; file
 * storage, `streamMaxAgeMs` of events, `replicas` copies), made or brought to these settings when
 * first needed. An event's subject is its type; its id is the publish's message id, so the
 * stream's duplicate window drops a second publish of it (the outbox relay resending after a
 * lost acknowledgement).
 *
 * A durable consumer is a JetStream durable pull consumer of the same name on each stream its
 * types reach, filtered to them, explicit acknowledgement and one event unacknowledged at a time
 * (`max_ack_pending` 1): the order within a domain holds through failures, since an event a
 * handler threw on (negatively acknowledged with a growing delay) blocks the ones after it. Each
 * stream is served by a loop of its own that outlives the server: the client reconnects by
 * itself (forever, every 250 ms) and the loop takes up its consumer again, retrying an
 * acknowledgement lost with the connection. Server-side the durable is the only state, so
 * another process consuming the same name shares its events with this one (each gets some), as
 * JetStream does; the embedded broker gives each every event.
 *
 * Live subscriptions and reads are ordered (ephemeral, memory) consumers, deleted when done.
 * Positions are `<stream>:<sequence>`: `read({ after })` goes on in that stream only.
 */
export async function natsBroker(options: NatsBrokerOptions): Promise<EventBroker> {
  const { logger, streamMaxAgeMs, replicas } = options;
  const retryBaseMs = options.retryBaseMs ?? 500;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const duplicateWindowMs = Math.min(options.duplicateWindowMs ?? 120_000, streamMaxAgeMs);

  const nc: NatsConnection = await connect({
    servers: [...options.servers],
    name: options.name ?? 'concord',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: timeoutMs,
  });
  let closed = false;
  let jsm: JetStreamManager;
  try {
    // Checks the account has JetStream: a server started without -js fails here, not on the first publish.
    jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  } catch (error) {
    await nc.close();
    throw error;
  }
  const js: JetStreamClient = jetstream(nc, { timeout: timeoutMs });
  /** Called when the connection is back: every consumer loop takes its consumer up again. */
  const reconnected = new Set<() => void>();

  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') logger.warn({ server: status.server }, 'nats: disconnected from the server; reconnecting');
      else if (status.type === 'reconnect') {
        logger.warn({ server: status.server }, 'nats: reconnected');
        for (const listener of [...reconnected]) listener();
      } else if (status.type === 'ldm') logger.warn({ server: status.server }, 'nats: the server is entering lame duck mode');
      else if (status.type === 'error') logger.error({ err: status.error }, 'nats: the server reported an error');
      else if (status.type === 'slowConsumer') logger.warn({ subject: status.sub.getSubject() }, 'nats: a subscription falls behind');
    }
  })();
  void nc.closed().then((error) => {
    if (!closed) logger.error({ err: error }, 'nats: the connection closed');
  });

  /** Whether the server takes several filter subjects on one consumer (2.10 on); before, one covers the domain. */
  const multipleFilters = (): boolean => {
    const [major = 0, minor = 0] = (nc.info?.version ?? '0.0.0').split('.').map(Number);
    return major > 2 || (major === 2 && minor >= 10);
  };
  /** A consumer's filter on `domain`'s stream: one subject, several (2.10 on), or the whole domain. */
  const filterOf = (domain: string, patterns: readonly string[]): string[] => {
    const subjects = filterSubjects(domain, patterns);
    return subjects.length > 1 && !multipleFilters() ? [`concord.${domain}.>`] : subjects;
  };
  const filterConfig = (subjects: readonly string[]): Pick<ConsumerConfig, 'filter_subject' | 'filter_subjects'> =>
    subjects.length === 1
      ? { filter_subject: subjects[0]!, filter_subjects: undefined }
      : { filter_subject: undefined, filter_subjects: [...subjects] };
  const sameFilter = (config: ConsumerConfig, domain: string, subjects: readonly string[]): boolean => {
    const whole = [`concord.${domain}.>`];
    const norm = (list: readonly string[]) => (list.length === 0 ? whole : [...list].sort()).join(' ');
    const current = config.filter_subjects?.length ? config.filter_subjects : config.filter_subject ? [config.filter_subject] : [];
    return norm(current) === norm(subjects);
  };

  const streamConfig = (domain: string) =>
    ({
      name: streamOf(domain),
      subjects: [`concord.${domain}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(streamMaxAgeMs),
      num_replicas: replicas,
      duplicate_window: nanos(duplicateWindowMs),
    }) satisfies Partial<StreamConfig>;

  const streams = new Map<string, Promise<void>>();
  /** Makes `domain`'s stream, or brings one made with other settings to these, once per broker (again after a failure). */
  const ensureStream = (domain: string): Promise<void> => {
    let ready = streams.get(domain);
    if (!ready) {
      ready = makeStream(domain);
      streams.set(domain, ready);
      ready.catch(() => streams.delete(domain));
    }
    return ready;
  };
  const makeStream = async (domain: string): Promise<void> => {
    const wanted = streamConfig(domain);
    const name = wanted.name;
    try {
      const { config } = await jsm.streams.info(name);
      if (config.storage !== wanted.storage)
        logger.warn({ stream: name, storage: config.storage }, 'nats: the stream is not file storage; left as it is');
      if (
        config.max_age !== wanted.max_age ||
        config.num_replicas !== wanted.num_replicas ||
        config.duplicate_window !== wanted.duplicate_window ||
        config.subjects.join(' ') !== wanted.subjects.join(' ')
      ) {
        // A stream that cannot take the settings (3 replicas on one server) still stores events: it is used as it is.
        await jsm.streams
          .update(name, {
            subjects: wanted.subjects,
            max_age: wanted.max_age,
            num_replicas: wanted.num_replicas,
            duplicate_window: wanted.duplicate_window,
          })
          .then(
            () => logger.info({ stream: name, maxAgeMs: streamMaxAgeMs, replicas }, 'nats: stream settings updated'),
            (error: unknown) =>
              logger.error({ err: error, stream: name, maxAgeMs: streamMaxAgeMs, replicas }, 'nats: could not update the stream settings'),
          );
      }
      return;
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
    try {
      await jsm.streams.add(wanted);
      logger.info({ stream: name, maxAgeMs: streamMaxAgeMs, replicas }, 'nats: stream created');
    } catch (error) {
      // Another process may have made it meanwhile; then it is there.
      await jsm.streams.info(name).catch(() => Promise.reject(error));
    }
  };

  /** The `CONCORD_` streams the server holds, with how many events each. */
  const existingStreams = async (): Promise<{ name: string; messages: number }[]> => {
    const found: { name: string; messages: number }[] = [];
    for await (const info of jsm.streams.list())
      if (info.config.name.startsWith('CONCORD_')) found.push({ name: info.config.name, messages: info.state.messages });
    return found.sort((a, b) => a.name.localeCompare(b.name));
  };
  /** The domains `patterns` reach: of the known ones and the server's streams, plus any they name. */
  const coveredDomains = async (patterns: readonly string[]): Promise<string[]> => {
    const held = (await existingStreams()).map((stream) => domainOfStream(stream.name));
    const candidates = new Set([...EVENT_DOMAINS, ...held, ...namedDomains(patterns)]);
    return [...candidates].filter((domain) => filterSubjects(domain, patterns).length > 0).sort();
  };

  const durableConfig = (name: string, stream: string, subjects: readonly string[], startAt: StartAt): Partial<ConsumerConfig> => ({
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: 1,
    max_deliver: -1,
    // A consumer away longer than the stream keeps events could not catch up anyway: the server
    // forgets it then (a replica that is gone for good, an old worker slot).
    inactive_threshold: nanos(streamMaxAgeMs),
    ...deliverOf(startAt, stream),
    ...filterConfig(subjects),
  });
  /**
   * The durable `name` on `domain`'s stream: made from `startAt` when the server does not know
   * it, else as it is (where it acknowledged), its filter brought to `patterns`.
   */
  const ensureDurable = async (domain: string, name: string, patterns: readonly string[], startAt: StartAt): Promise<void> => {
    const stream = streamOf(domain);
    const subjects = filterOf(domain, patterns);
    try {
      const { config } = await jsm.consumers.info(stream, name);
      if (!sameFilter(config, domain, subjects)) {
        try {
          await jsm.consumers.update(stream, name, filterConfig(subjects));
        } catch (error) {
          logger.warn(
            { err: error, stream, consumer: name, subjects },
            'nats: could not change the consumer filter; it keeps its former types',
          );
        }
      }
      return;
    } catch (error) {
      if (!isConsumerNotFound(error)) throw error;
    }
    try {
      await jsm.consumers.add(stream, durableConfig(name, stream, subjects, startAt));
    } catch (error) {
      // Made by another process meanwhile: it is there, and resumes where that one acknowledged.
      await jsm.consumers.info(stream, name).catch(() => Promise.reject(error));
    }
  };

  /** Acknowledges and waits for the server to confirm, again after a lost connection, for up to `ackWaitMs`. */
  const acknowledge = async (message: JsMsg, consumer: string, wait: Sleeper): Promise<void> => {
    // The reply subject identifies the delivery; JsMsg.ackAck() sends once, so a retry needs it.
    const reply = (message as JsMsg & { reply?: string }).reply;
    const deadline = Date.now() + ackWaitMs;
    for (let attempt = 0; ; attempt++) {
      try {
        if (!reply) return message.ack();
        await nc.request(reply, '+ACK', { timeout: Math.min(timeoutMs, 2_000) });
        return;
      } catch (error) {
        if (closed || nc.isClosed() || Date.now() > deadline) {
          logger.warn(
            { err: error, consumer, stream: message.info.stream, sequence: message.seq },
            'event consumer: the acknowledgement did not reach the server; the event comes again',
          );
          return;
        }
      }
      await wait.sleep(Math.min(1_000, 50 * 2 ** attempt));
    }
  };

  /**
   * Runs `each` over a consumer's messages, one at a time, until stop(). The consumer is taken up
   * again (`open()`, after a growing pause) whenever its messages end or fail, the connection came
   * back (a restarted server forgot what was pulled; its JetStream may answer a moment after),
   * the server's heartbeats stopped, or the consumer was deleted (a rewind makes it again).
   * The client library recovers some of these itself, but waits up to 30 s between its tries.
   */
  const serve = (
    what: Record<string, string>,
    open: () => Promise<Consumer>,
    each: (message: JsMsg, wait: Sleeper) => Promise<void>,
    how: { batch: number; unhandled?: (message: JsMsg) => void; cleanup?: (consumer: Consumer) => Promise<unknown> },
  ): Served => {
    let stopped = false;
    let busy = false;
    let again = false;
    let messages: ConsumerMessages | undefined;
    const wait = sleeper();
    // The handler running finishes (and is acknowledged) first; leaving the iteration then, not
    // closing it during the handler, which would first send the next pull.
    const restart = () => {
      again = true;
      wait.wake();
      if (!busy) void messages?.close();
    };
    reconnected.add(restart);
    const done = (async () => {
      let restarts = 0;
      while (!stopped && !closed) {
        let consumer: Consumer | undefined;
        again = false;
        try {
          consumer = await open();
          const current = await consumer.consume({ max_messages: how.batch });
          messages = current;
          void (async () => {
            for await (const note of current.status())
              if (
                note.type === 'consumer_deleted' ||
                note.type === 'consumer_not_found' ||
                note.type === 'stream_not_found' ||
                (note.type === 'heartbeats_missed' && note.count >= 2)
              ) {
                restart();
                break;
              }
          })().catch(() => undefined);
          if (stopped || again) void current.close();
          for await (const message of current) {
            if (stopped) {
              how.unhandled?.(message);
              break;
            }
            restarts = 0;
            busy = true;
            try {
              await each(message, wait);
            } finally {
              busy = false;
            }
            if (stopped || again) break;
          }
        } catch (error) {
          if (stopped || closed) break;
          logger.warn({ err: error, ...what }, 'nats: lost a consumer; taking it up again');
        } finally {
          messages = undefined;
          if (consumer && how.cleanup) await how.cleanup(consumer).catch(() => undefined);
        }
        if (stopped || closed) break;
        await wait.sleep(Math.min(5_000, 100 * 2 ** restarts++));
      }
    })()
      .catch((error: unknown) => {
        if (!closed) logger.error({ err: error, ...what }, 'nats: a consumer stopped on an error');
      })
      .finally(() => reconnected.delete(restart));
    return {
      done,
      stop() {
        stopped = true;
        wait.wake();
        if (!busy) void messages?.close();
      },
    };
  };

  const running = new Set<EventConsumer>();
  const subscriptions = new Set<() => Promise<void>>();

  return {
    kind: 'nats',

    async publish(events) {
      if (closed) throw new Error('the event broker is closed');
      const byDomain = new Map<string, CanonicalEvent[]>();
      for (const event of events) {
        const domain = domainOf(event.type);
        streamOf(domain);
        const list = byDomain.get(domain);
        if (list) list.push(event);
        else byDomain.set(domain, [event]);
      }
      // Domains in parallel; within one, one after another, so a failure leaves no later event
      // stored before it (the relay sends the rest again, and the duplicate window drops what was stored).
      const results = await Promise.allSettled(
        [...byDomain].map(async ([domain, list]) => {
          await ensureStream(domain);
          for (const event of list) {
            try {
              await js.publish(event.type, JSON.stringify(event), {
                msgID: event.id,
                expect: { streamName: streamOf(domain) },
                timeout: timeoutMs,
              });
            } catch (error) {
              // The stream may be gone (deleted by an operator): made again on the next publish.
              streams.delete(domain);
              throw error;
            }
          }
        }),
      );
      const failed = results.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
    },

    async consume({ name, types, startAt = 'new' }: ConsumerOptions, handler: EventHandler): Promise<EventConsumer> {
      if (closed) throw new Error('the event broker is closed');
      if (!CONSUMER_NAME.test(name)) throw new Error(`consumer name ${JSON.stringify(name)} is not letters, digits, - and _`);
      const patterns = patternsOf(types);
      const domains = await coveredDomains(patterns);
      // Every durable exists once consume() resolves: an event published after is the consumer's, whatever startAt.
      for (const domain of domains) {
        await ensureStream(domain);
        await ensureDurable(domain, name, patterns, startAt);
      }
      const served = domains.map((domain) => {
        const stream = streamOf(domain);
        const failures = { sequence: 0, count: 0 };
        const open = async (): Promise<Consumer> => {
          try {
            return await js.consumers.get(stream, name);
          } catch (error) {
            if (!isConsumerNotFound(error) && !isStreamNotFound(error)) throw error;
            // Gone from the server (deleted, or its store lost): made again from startAt.
            await ensureStream(domain);
            await ensureDurable(domain, name, patterns, startAt);
            return js.consumers.get(stream, name);
          }
        };
        const deliver = async (message: JsMsg, wait: Sleeper): Promise<void> => {
          let event: CanonicalEvent;
          try {
            event = message.json<CanonicalEvent>();
          } catch (error) {
            logger.error({ err: error, consumer: name, stream, sequence: message.seq }, 'event consumer: not an event; dropped');
            message.term('not a canonical event');
            return;
          }
          if (matches(patterns, message.subject)) {
            // Tells the server the handler is still at it, so a long one is not given the event again meanwhile.
            const working = setInterval(() => message.working(), Math.max(100, ackWaitMs / 3));
            try {
              await handler(event);
              failures.count = 0;
            } catch (error) {
              failures.count = failures.sequence === message.seq ? failures.count + 1 : 1;
              failures.sequence = message.seq;
              const delayMs = Math.min(MAX_RETRY_MS, retryBaseMs * 2 ** (failures.count - 1));
              logger.warn(
                { err: error, consumer: name, stream, sequence: message.seq, eventId: event.id, delayMs },
                'event consumer failed; the event comes again',
              );
              message.nak(delayMs);
              return;
            } finally {
              clearInterval(working);
            }
          }
          await acknowledge(message, name, wait);
        };
        return serve({ consumer: name, stream }, open, deliver, {
          batch: 1,
          // Arrived as the consumer stopped: back to the server at once, not after ackWait.
          unhandled: (message) => message.nak(),
        });
      });
      const consumer: EventConsumer = {
        async stop() {
          for (const each of served) each.stop();
          await Promise.all(served.map((each) => each.done));
          running.delete(consumer);
        },
      };
      running.add(consumer);
      return consumer;
    },

    async subscribe(types: TypePatterns, handler: EventHandler) {
      if (closed) throw new Error('the event broker is closed');
      const patterns = patternsOf(types);
      const served: Served[] = [];
      const unsubscribe = async () => {
        subscriptions.delete(unsubscribe);
        for (const each of served) each.stop();
        await Promise.all(served.map((each) => each.done));
      };
      try {
        for (const domain of await coveredDomains(patterns)) {
          await ensureStream(domain);
          const stream = streamOf(domain);
          const subjects = filterOf(domain, patterns);
          // From the stream's end now, and after a loss from the event after the last one seen:
          // the ordered consumer is made again (it lives in the server's memory) from there.
          let next = (await jsm.streams.info(stream)).state.last_seq + 1;
          const open = () =>
            js.consumers.get(stream, { filter_subjects: subjects.length === 1 ? subjects[0]! : subjects, opt_start_seq: next });
          const each = async (message: JsMsg) => {
            next = message.seq + 1;
            if (!matches(patterns, message.subject)) return;
            try {
              await handler(message.json<CanonicalEvent>());
            } catch (error) {
              logger.error({ err: error, stream, sequence: message.seq }, 'live event handler failed');
            }
          };
          served.push(
            serve({ subscription: subjects.join(' '), stream }, open, each, { batch: 256, cleanup: (consumer) => consumer.delete() }),
          );
        }
      } catch (error) {
        await unsubscribe();
        throw error;
      }
      subscriptions.add(unsubscribe);
      return unsubscribe;
    },

    async read({ types = '*', since, after, limit = 1_000 }) {
      const patterns = patternsOf(types);
      let targets: { stream: string; start: Partial<OrderedConsumerOptions> }[];
      if (after !== undefined) {
        const { stream, sequence } = parsePosition(after);
        targets = filterSubjects(domainOfStream(stream), patterns).length > 0 ? [{ stream, start: { opt_start_seq: sequence + 1 } }] : [];
      } else {
        const start: Partial<OrderedConsumerOptions> = since
          ? { opt_start_time: since.toISOString() }
          : { deliver_policy: DeliverPolicy.All };
        const covered = new Set(await coveredDomains(patterns));
        targets = (await existingStreams())
          .filter((stream) => stream.messages > 0 && covered.has(domainOfStream(stream.name)))
          .map((stream) => ({ stream: stream.name, start }));
      }
      const found: (StoredEvent & { at: number; stream: string; sequence: number })[] = [];
      for (const { stream, start } of targets) {
        const subjects = filterOf(domainOfStream(stream), patterns);
        let consumer: Consumer;
        try {
          consumer = await js.consumers.get(stream, { ...start, filter_subjects: subjects.length === 1 ? subjects[0]! : subjects });
        } catch (error) {
          if (isStreamNotFound(error)) continue;
          throw error;
        }
        try {
          let taken = 0;
          let remaining = (await consumer.info(true)).num_pending;
          // Exactly as many as the server holds (at most a batch): a fetch then ends on its last event, not on a timeout.
          while (remaining > 0 && taken < limit) {
            const batch = await consumer.fetch({ max_messages: Math.min(remaining, READ_BATCH), expires: timeoutMs });
            let got = 0;
            for await (const message of batch) {
              got += 1;
              remaining = message.info.pending;
              if (!matches(patterns, message.subject) || taken >= limit) continue;
              taken += 1;
              found.push({
                event: message.json<CanonicalEvent>(),
                position: positionOf(stream, message.seq),
                at: message.info.timestampNanos,
                stream,
                sequence: message.seq,
              });
            }
            if (got === 0) break;
          }
        } finally {
          await consumer.delete().catch(() => false);
        }
      }
      // Within a stream its order; between streams the time each event was stored.
      found.sort((a, b) => (a.stream === b.stream ? a.sequence - b.sequence : a.at - b.at || a.stream.localeCompare(b.stream)));
      return found.slice(0, limit).map(({ event, position }) => ({ event, position }));
    },

    // Made again on each stream the types reach; a durable of the name on another stream is left as it is.
    async rewind(name, types, startAt) {
      if (!CONSUMER_NAME.test(name)) throw new Error(`consumer name ${JSON.stringify(name)} is not letters, digits, - and _`);
      const patterns = patternsOf(types);
      const only = typeof startAt === 'object' && 'after' in startAt ? parsePosition(startAt.after).stream : null;
      for (const domain of await coveredDomains(patterns)) {
        const stream = streamOf(domain);
        if (only && stream !== only) continue;
        await ensureStream(domain);
        // A consumer running meanwhile may make its durable again between the two steps: then once more.
        for (let attempt = 1; ; attempt++) {
          await jsm.consumers.delete(stream, name).catch((error: unknown) => {
            if (!isConsumerNotFound(error)) throw error;
          });
          try {
            await jsm.consumers.add(stream, durableConfig(name, stream, filterOf(domain, patterns), startAt));
            break;
          } catch (error) {
            if (attempt === 3) throw error;
          }
        }
      }
    },

    async consumers(): Promise<ConsumerState[]> {
      const pending = new Map<string, number>();
      for (const { name: stream } of await existingStreams())
        for await (const info of jsm.consumers.list(stream)) {
          const name = info.config.durable_name;
          if (name) pending.set(name, (pending.get(name) ?? 0) + info.num_pending + info.num_ack_pending);
        }
      return [...pending].sort(([a], [b]) => a.localeCompare(b)).map(([name, count]) => ({ name, pending: count }));
    },

    async close() {
      if (closed) return;
      await Promise.all([...running].map((consumer) => consumer.stop()));
      await Promise.all([...subscriptions].map((unsubscribe) => unsubscribe()));
      closed = true;
      // Drain flushes what was acknowledged; a server that is gone would keep it waiting.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([nc.drain().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
      clearTimeout(timer);
      if (!nc.isClosed()) await nc.close();
    },
  };
}
