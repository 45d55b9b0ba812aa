import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { migrateProcessStore } from './process-store.ts';

export type Claim<R> =
  /** This request holds the key; `owner` proves it when completing or releasing. */
  | { kind: 'new'; owner: string }
  | { kind: 'done'; response: R }
  | { kind: 'in_progress' }
  /** The key was used before with a different request. */
  | { kind: 'mismatch' };

/**
 * Idempotency keys in the process store. The first request with a key claims it (a lease);
 * later ones with the same request get the stored result once it is there, and ones with a
 * different request are refused. A claim whose holder died is taken over after its lease.
 */
export class IdempotencyStore<R> {
  constructor(
    private readonly db: Database,
    private readonly options: { ttlMs: number; leaseMs: number; now?: () => number },
  ) {
    migrateProcessStore(db);
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
          { request_hash: string; state: string; response: string | null; lease_until: number; expires_at: number }
        >('SELECT request_hash, state, response, lease_until, expires_at FROM idempotency_keys WHERE scope = ? AND key = ?')
        .get(scope, key);
      if (row && row.expires_at > now) {
        if (row.request_hash !== requestHash) return { kind: 'mismatch' };
        if (row.state === 'done') return { kind: 'done', response: JSON.parse(row.response ?? 'null') as R };
        if (row.lease_until > now) return { kind: 'in_progress' };
      }
      const owner = randomUUID();
      this.db
        .prepare(
          `INSERT INTO idempotency_keys (scope, key, request_hash, state, response, owner, lease_until, expires_at)
           VALUES (?, ?, ?, 'in_progress', NULL, ?, ?, ?)
           ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, state = 'in_progress', response = NULL,
             owner = excluded.owner, lease_until = excluded.lease_until, expires_at = excluded.expires_at`,
        )
        .run(scope, key, requestHash, owner, now + this.options.leaseMs, now + this.options.ttlMs);
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

  /** Removes expired keys; returns how many. */
  purge(): number {
    return this.db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?').run(this.now()).changes;
  }
}
