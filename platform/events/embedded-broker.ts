import type { Logger } from '../logger.ts';
import { openDatabase } from '../sqlite.ts';
import {
  CONSUMER_NAME,
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

export interface EmbeddedBrokerOptions {
  /** The SQLite file the services of one machine share (`:memory:`: this process only). */
  readonly file: string;
  readonly logger: Logger;
  /** How often consumers look for new events, in ms. */
  readonly pollMs?: number;
  /** Events older than this are deleted (a consumer away longer misses them). */
  readonly retentionMs?: number;
  /** First wait before a failed handler gets its event again; doubles up to 30 s. */
  readonly retryBaseMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position  INTEGER PRIMARY KEY AUTOINCREMENT,
  id        TEXT    NOT NULL UNIQUE,
  type      TEXT    NOT NULL,
  stored_at INTEGER NOT NULL,
  body      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_stored_at ON events (stored_at);
CREATE TABLE IF NOT EXISTS consumers (
  name       TEXT    PRIMARY KEY,
  types      TEXT    NOT NULL,
  acked      INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);`;

const BATCH = 200;
const MAX_RETRY_MS = 30_000;

/**
 * The embedded broker: one log of events in a SQLite file (WAL), which every service started by
 * `npm start` opens, each consumer's acknowledged position in the same file. Publishing is an
 * insert (a second insert of an id is dropped); consumers poll every `pollMs` (50 ms), so an
 * event reaches them within that plus their own work. One machine only: between machines, NATS
 * JetStream (nats-broker.ts). A durable name is one consumer at a time here; two processes
 * consuming one name would each get every event.
 */
export function embeddedBroker(options: EmbeddedBrokerOptions): EventBroker {
  const { logger } = options;
  const pollMs = options.pollMs ?? 50;
  const retentionMs = options.retentionMs ?? 7 * 24 * 3_600_000;
  const retryBaseMs = options.retryBaseMs ?? 500;
  const db = openDatabase(options.file);
  db.exec(SCHEMA);
  const insert = db.prepare('INSERT OR IGNORE INTO events (id, type, stored_at, body) VALUES (?, ?, ?, ?)');
  const after = db.prepare<[number, number], { position: number; type: string; body: string }>(
    'SELECT position, type, body FROM events WHERE position > ? ORDER BY position LIMIT ?',
  );
  const last = db.prepare<[], { position: number | null }>('SELECT max(position) AS position FROM events');
  const before = db.prepare<[number], { position: number | null }>('SELECT max(position) AS position FROM events WHERE stored_at < ?');
  const consumerRow = db.prepare<[string], { acked: number; types: string }>('SELECT acked, types FROM consumers WHERE name = ?');
  const createConsumer = db.prepare('INSERT OR IGNORE INTO consumers (name, types, acked, updated_at) VALUES (?, ?, ?, ?)');
  const moveConsumer = db.prepare('UPDATE consumers SET acked = ?, updated_at = ? WHERE name = ? AND acked = ?');
  const setConsumer = db.prepare(
    'INSERT INTO consumers (name, types, acked, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET types = excluded.types, acked = excluded.acked, updated_at = excluded.updated_at',
  );
  const prune = db.prepare('DELETE FROM events WHERE stored_at < ?');
  const publishAll = db.transaction((events: readonly CanonicalEvent[], at: number) => {
    for (const event of events) insert.run(event.id, event.type, at, JSON.stringify(event));
  });

  const lastPosition = () => last.get()?.position ?? 0;
  const positionAt = (startAt: StartAt): number => {
    if (startAt === 'all') return 0;
    if (startAt === 'new') return lastPosition();
    if ('after' in startAt) {
      const position = Number(startAt.after);
      if (!Number.isSafeInteger(position) || position < 0)
        throw new Error(`position ${JSON.stringify(startAt.after)} is not one of this broker's`);
      return position;
    }
    return before.get(startAt.time.getTime())?.position ?? 0;
  };

  let closed = false;
  let prunedAt = 0;
  const running = new Set<{ stop(): Promise<void> }>();
  const sleep = (ms: number, wake: { wake?: () => void }) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  // Live subscribers share one poll from the position the first of them started at.
  const live = new Set<{ patterns: readonly string[]; handler: EventHandler }>();
  let livePosition = 0;
  let liveTimer: NodeJS.Timeout | null = null;
  const pollLive = async () => {
    liveTimer = null;
    try {
      for (let rows = after.all(livePosition, BATCH); rows.length > 0 && !closed; rows = after.all(livePosition, BATCH))
        for (const row of rows) {
          livePosition = row.position;
          const event = JSON.parse(row.body) as CanonicalEvent;
          for (const subscriber of [...live])
            if (matches(subscriber.patterns, row.type))
              try {
                await subscriber.handler(event);
              } catch (error) {
                logger.error({ err: error, eventId: event.id, type: event.type }, 'live event handler failed');
              }
        }
    } catch (error) {
      if (!closed) logger.error({ err: error }, 'embedded broker: reading new events failed');
    }
    if (live.size > 0 && !closed) liveTimer = setTimeout(pollLive, pollMs);
  };

  return {
    kind: 'embedded',

    async publish(events) {
      if (closed) throw new Error('the event broker is closed');
      const at = Date.now();
      publishAll(events, at);
      if (at - prunedAt > 60_000) {
        prunedAt = at;
        prune.run(at - retentionMs);
      }
    },

    async consume({ name, types, startAt = 'new' }: ConsumerOptions, handler: EventHandler): Promise<EventConsumer> {
      if (!CONSUMER_NAME.test(name)) throw new Error(`consumer name ${JSON.stringify(name)} is not letters, digits, - and _`);
      const patterns = patternsOf(types);
      createConsumer.run(name, JSON.stringify(patterns), positionAt(startAt), Date.now());
      let stopped = false;
      const waiting: { wake?: () => void } = {};
      const loop = (async () => {
        let failures = 0;
        while (!stopped && !closed) {
          let acked = consumerRow.get(name)?.acked ?? 0;
          const rows = after.all(acked, BATCH);
          if (rows.length === 0) {
            await sleep(pollMs, waiting);
            continue;
          }
          for (const row of rows) {
            if (stopped || closed) break;
            if (matches(patterns, row.type)) {
              try {
                await handler(JSON.parse(row.body) as CanonicalEvent);
                failures = 0;
              } catch (error) {
                failures += 1;
                const delayMs = Math.min(MAX_RETRY_MS, retryBaseMs * 2 ** (failures - 1));
                logger.warn(
                  { err: error, consumer: name, position: row.position, delayMs },
                  'event consumer failed; the event comes again',
                );
                await sleep(delayMs, waiting);
                break;
              }
            }
            // Moved only from where it was read: a rewind in the meantime wins.
            if (moveConsumer.run(row.position, Date.now(), name, acked).changes === 0) break;
            acked = row.position;
          }
        }
      })().catch((error: unknown) => {
        if (!closed) logger.error({ err: error, consumer: name }, 'event consumer stopped on an error');
      });
      const consumer = {
        async stop() {
          stopped = true;
          waiting.wake?.();
          await loop;
          running.delete(consumer);
        },
      };
      running.add(consumer);
      return consumer;
    },

    async subscribe(types: TypePatterns, handler: EventHandler) {
      const entry = { patterns: patternsOf(types), handler };
      if (live.size === 0) livePosition = lastPosition();
      live.add(entry);
      liveTimer ??= setTimeout(pollLive, pollMs);
      return async () => {
        live.delete(entry);
        if (live.size === 0 && liveTimer) {
          clearTimeout(liveTimer);
          liveTimer = null;
        }
      };
    },

    async read({ types = '*', since, after: from, limit = 1_000 }) {
      const patterns = patternsOf(types);
      let position = from !== undefined ? Number(from) : since ? positionAt({ time: since }) : 0;
      const found: StoredEvent[] = [];
      while (found.length < limit) {
        const rows = after.all(position, BATCH);
        if (rows.length === 0) break;
        for (const row of rows) {
          position = row.position;
          if (matches(patterns, row.type) && found.length < limit)
            found.push({ event: JSON.parse(row.body) as CanonicalEvent, position: String(row.position) });
        }
      }
      return found;
    },

    async rewind(name, types, startAt) {
      if (!CONSUMER_NAME.test(name)) throw new Error(`consumer name ${JSON.stringify(name)} is not letters, digits, - and _`);
      setConsumer.run(name, JSON.stringify(patternsOf(types)), positionAt(startAt), Date.now());
    },

    async consumers(): Promise<ConsumerState[]> {
      const rows = db
        .prepare<[], { name: string; types: string; acked: number }>('SELECT name, types, acked FROM consumers ORDER BY name')
        .all();
      const count = db.prepare<[number], { type: string; n: number }>(
        'SELECT type, count(*) AS n FROM events WHERE position > ? GROUP BY type',
      );
      return rows.map((row) => {
        const patterns = JSON.parse(row.types) as string[];
        const pending = count
          .all(row.acked)
          .filter((group) => matches(patterns, group.type))
          .reduce((sum, group) => sum + group.n, 0);
        return { name: row.name, pending };
      });
    },

    async close() {
      if (closed) return;
      await Promise.all([...running].map((consumer) => consumer.stop()));
      closed = true;
      live.clear();
      if (liveTimer) clearTimeout(liveTimer);
      db.close();
    },
  };
}
