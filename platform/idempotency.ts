import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { migrateProcessStore } from './process-store.ts';

export type Claim<R> =
  /** This request holds the key; `owner` proves it when completing or releasing. */
  | { kind: 'new'; owner: string }
  | { kind: 'done'; response: R }
  /** Another request holds the key; `retryAfterMs`: when it is worth asking again. */
  | { kind: 'in_progress'; retryAfterMs: number }
  /** The key was used before with a different request. */
  | { kind: 'mismatch' };

/**
 * Idempotency keys in the process store. The first request with a key claims it (a lease);
 * later ones with the same request get the stored result once it is there, and ones with a
 * different request are refused. A claim whose holder died is taken over after its lease, or
 * sooner when the store has a holder: each claim names the process that holds it, that process
 * beats (heartbeat()) while it lives, and a claim whose holder has not beaten for
 * `holderTimeoutMs` is free to take.
 */
export class IdempotencyStore<R> {
  /** The process holding this store's claims: one id per store instance. */
  readonly holder = randomUUID();

  constructor(
    private readonly db: Database,
    private readonly options: { ttlMs: number; leaseMs: number; holderTimeoutMs?: number; now?: () => number },
  ) {
    migrateProcessStore(db);
    this.heartbeat();
  }

  /** Marks this holder alive; claims of a holder silent for holderTimeoutMs may be taken over. */
  heartbeat(): void {
    if (!this.db.open) return;
    this.db
      .prepare(
        'INSERT INTO idempotency_holders (holder, pid, heartbeat_at) VALUES (?, ?, ?) ON CONFLICT (holder) DO UPDATE SET heartbeat_at = excluded.heartbeat_at',
      )
      .run(this.holder, process.pid, this.now());
  }

  /** Forgets this holder (its process stops): its remaining claims are free at once. */
  retire(): void {
    // A store whose database is already closed holds nothing any more.
    if (!this.db.open) return;
    this.db.prepare('DELETE FROM idempotency_holders WHERE holder = ?').run(this.holder);
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  claim(scope: string, key: string, requestHash: string): Claim<R> {
    const claim = this.db.transaction((): Claim<R> => {
      const now = this.now();
      const row = this.db
        .prepare<
          [string, string],
          {
            request_hash: string;
            state: string;
            response: string | null;
            lease_until: number;
            expires_at: number;
            holder: string | null;
            heartbeat_at: number | null;
          }
        >(
          `SELECT k.request_hash, k.state, k.response, k.lease_until, k.expires_at, k.holder, h.heartbeat_at
           FROM idempotency_keys k LEFT JOIN idempotency_holders h ON h.holder = k.holder WHERE k.scope = ? AND k.key = ?`,
        )
        .get(scope, key);
      if (row && row.expires_at > now) {
        if (row.request_hash !== requestHash) return { kind: 'mismatch' };
        if (row.state === 'done') return { kind: 'done', response: JSON.parse(row.response ?? 'null') as R };
        const freeAt = this.freeAt(row, now);
        if (freeAt > now) return { kind: 'in_progress', retryAfterMs: freeAt - now };
      }
      const owner = randomUUID();
      this.db
        .prepare(
          `INSERT INTO idempotency_keys (scope, key, request_hash, state, response, owner, holder, lease_until, expires_at)
           VALUES (?, ?, ?, 'in_progress', NULL, ?, ?, ?, ?)
           ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, state = 'in_progress', response = NULL,
             owner = excluded.owner, holder = excluded.holder, lease_until = excluded.lease_until, expires_at = excluded.expires_at`,
        )
        .run(scope, key, requestHash, owner, this.holder, now + this.options.leaseMs, now + this.options.ttlMs);
      return { kind: 'new', owner };
    });
    return claim.immediate();
  }

  /**
   * Stores the result; later requests with the key get it. Only the claim's owner may: a holder
   * whose lease lapsed and was taken over changes nothing (returns false). Run inside the
   * caller's transaction if it has one.
   */
  complete(scope: string, key: string, owner: string, response: R): boolean {
    const update = this.db.prepare(
      `UPDATE idempotency_keys SET state = 'done', response = ? WHERE scope = ? AND key = ? AND owner = ? AND state = 'in_progress'`,
    );
    return update.run(JSON.stringify(response), scope, key, owner).changes === 1;
  }

  /** Gives the owner's claim up after an unexpected failure, so that a retry runs again. */
  release(scope: string, key: string, owner: string): void {
    this.db
      .prepare(`DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND owner = ? AND state = 'in_progress'`)
      .run(scope, key, owner);
  }

  /**
   * When an in-progress claim may be taken: at the end of its lease, or once its holder has been
   * silent for holderTimeoutMs (at once when the holder is retired or unknown).
   */
  private freeAt(row: { lease_until: number; holder: string | null; heartbeat_at: number | null }, now: number): number {
    const timeout = this.options.holderTimeoutMs;
    if (timeout === undefined || row.holder === null) return row.lease_until;
    if (row.heartbeat_at === null) return now;
    return Math.min(row.lease_until, row.heartbeat_at + timeout);
  }

  /** Removes expired keys; returns how many. */
  purge(): number {
    const timeout = this.options.holderTimeoutMs;
    if (timeout !== undefined) {
      this.db
        .prepare('DELETE FROM idempotency_holders WHERE heartbeat_at <= ? AND holder != ?')
        .run(this.now() - this.options.leaseMs, this.holder);
    }
    return this.db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?').run(this.now()).changes;
  }
}
