import type { Database } from 'better-sqlite3';
import type { Logger } from './logger.ts';
import { migrateProcessStore } from './process-store.ts';

export type OutboxStatus = 'pending' | 'delivered' | 'dead';

export interface OutboxEntry {
  id: number;
  dedupeKey: string;
  kind: string;
  payload: unknown;
  status: OutboxStatus;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  correlationId: string | null;
  createdAt: string;
  deliveredAt: string | null;
}

interface Row {
  id: number;
  dedupe_key: string;
  kind: string;
  payload: string;
  status: OutboxStatus;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  correlation_id: string | null;
  created_at: string;
  delivered_at: string | null;
}

const toEntry = (row: Row): OutboxEntry => ({
  id: row.id,
  dedupeKey: row.dedupe_key,
  kind: row.kind,
  payload: JSON.parse(row.payload) as unknown,
  status: row.status,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at,
  lastError: row.last_error,
  correlationId: row.correlation_id,
  createdAt: row.created_at,
  deliveredAt: row.delivered_at,
});

/** The durable outbox: deliveries to other systems, kept until they succeed or are dead-lettered. */
export class Outbox {
  constructor(
    readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {
    migrateProcessStore(db);
  }

  /** Adds a delivery; one already enqueued under the same dedupe key is left as it is. */
  enqueue(entry: { dedupeKey: string; kind: string; payload: unknown; correlationId: string }): void {
    this.db
      .prepare(
        `INSERT INTO outbox (dedupe_key, kind, payload, status, attempts, next_attempt_at, correlation_id, created_at)
         VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING`,
      )
      .run(entry.dedupeKey, entry.kind, JSON.stringify(entry.payload), this.now(), entry.correlationId, new Date(this.now()).toISOString());
  }

  due(limit: number): OutboxEntry[] {
    return this.db
      .prepare<[number, number], Row>(
        `SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
      )
      .all(this.now(), limit)
      .map(toEntry);
  }

  list(status?: OutboxStatus): OutboxEntry[] {
    const rows = status
      ? this.db.prepare<[string], Row>('SELECT * FROM outbox WHERE status = ? ORDER BY id').all(status)
      : this.db.prepare<[], Row>('SELECT * FROM outbox ORDER BY id').all();
    return rows.map(toEntry);
  }

  get(id: number): OutboxEntry | null {
    const row = this.db.prepare<[number], Row>('SELECT * FROM outbox WHERE id = ?').get(id);
    return row ? toEntry(row) : null;
  }

  markDelivered(id: number): void {
    this.db
      .prepare(`UPDATE outbox SET status = 'delivered', delivered_at = ?, last_error = NULL WHERE id = ?`)
      .run(new Date(this.now()).toISOString(), id);
  }

  markFailed(id: number, error: string, nextAttemptAt: number | null): void {
    this.db
      .prepare(
        `UPDATE outbox SET attempts = attempts + 1, last_error = ?, status = ?, next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?`,
      )
      .run(error.slice(0, 2000), nextAttemptAt === null ? 'dead' : 'pending', nextAttemptAt, id);
  }

  /** Removes delivered entries older than `ageMs`; returns how many. */
  prune(ageMs: number): number {
    return this.db
      .prepare(`DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?`)
      .run(new Date(this.now() - ageMs).toISOString()).changes;
  }

  /** Puts a dead-lettered (or pending) entry back in line for delivery now, with fresh attempts. */
  replay(id: number): OutboxEntry | null {
    this.db
      .prepare(`UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ? AND status <> 'delivered'`)
      .run(this.now(), id);
    return this.get(id);
  }
}

export type OutboxHandler = (payload: any, entry: OutboxEntry) => Promise<void>;

export interface OutboxWorker {
  /** Delivers what is due now; resolves when that round is done. */
  drain(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Delivers outbox entries: each due entry goes to its kind's handler; a failure is retried with
 * capped exponential backoff and full jitter, and after `maxAttempts` the entry is dead-lettered
 * (an `outbox.dead_lettered` event) until someone replays it.
 */
export function startOutboxWorker(options: {
  outbox: Outbox;
  handlers: Readonly<Record<string, OutboxHandler>>;
  logger: Logger;
  pollMs: number;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  now?: () => number;
  random?: () => number;
}): OutboxWorker {
  const { outbox, handlers, logger } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  let running: Promise<number> | null = null;
  let stopped = false;

  async function deliver(entry: OutboxEntry): Promise<void> {
    const log = logger.child({ correlationId: entry.correlationId, outboxId: entry.id, kind: entry.kind });
    const handler = handlers[entry.kind];
    try {
      if (!handler) throw new Error(`no handler for outbox entries of kind ${entry.kind}`);
      await handler(entry.payload, entry);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const attempts = entry.attempts + 1;
      if (attempts >= options.maxAttempts) {
        outbox.markFailed(entry.id, message, null);
        log.error({ event: 'outbox.dead_lettered', attempts, error: message }, 'outbox entry dead-lettered');
        return;
      }
      const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempts - 1));
      const delay = Math.floor(random() * ceiling);
      outbox.markFailed(entry.id, message, now() + delay);
      log.warn({ event: 'outbox.retry_scheduled', attempts, delayMs: delay, error: message }, 'outbox delivery failed; will retry');
      return;
    }
    // Outside the try: a failure to record the delivery must not count as a failed delivery.
    outbox.markDelivered(entry.id);
    log.info({ event: 'outbox.delivered', attempts: entry.attempts + 1 }, 'outbox entry delivered');
  }

  async function round(): Promise<number> {
    const entries = outbox.due(20);
    for (const entry of entries) await deliver(entry);
    return entries.length;
  }

  const drain = (): Promise<number> => {
    running ??= round().finally(() => (running = null));
    return running;
  };
  const timer = setInterval(() => {
    if (!stopped) void drain().catch((error: unknown) => logger.error({ err: error }, 'outbox round failed'));
  }, options.pollMs);
  timer.unref();

  return {
    drain,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
