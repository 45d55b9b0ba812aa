import { describe, expect, it } from 'vitest';
import { IdempotencyStore } from '../../platform/idempotency.ts';
import { openDatabase } from '../../platform/sqlite.ts';

describe('idempotency keys', () => {
  it('lets a request take over a key whose holder outlived its lease, and only the new holder record it', () => {
    let clock = 0;
    const store = new IdempotencyStore<string>(openDatabase(':memory:'), { ttlMs: 86_400_000, leaseMs: 1_000, now: () => clock });
    const first = store.claim('agent', 'k', 'h');
    expect(first.kind).toBe('new');
    expect(store.claim('agent', 'k', 'h').kind).toBe('in_progress');
    clock = 1_001;
    const second = store.claim('agent', 'k', 'h');
    expect(second.kind).toBe('new');
    if (first.kind !== 'new' || second.kind !== 'new') throw new Error('unreachable');
    // The stale holder can neither free nor fill the key any more.
    store.release('agent', 'k', first.owner);
    expect(store.complete('agent', 'k', first.owner, 'late')).toBe(false);
    expect(store.claim('agent', 'k', 'h').kind).toBe('in_progress');
    expect(store.complete('agent', 'k', second.owner, 'RMA-1')).toBe(true);
    expect(store.claim('agent', 'k', 'h')).toEqual({ kind: 'done', response: 'RMA-1' });
    expect(store.claim('agent', 'k', 'other input').kind).toBe('mismatch');
    expect(store.claim('someone else', 'k', 'other input').kind).toBe('new');
  });

  it('frees a claim whose holding process stopped beating long before its lease, with a retry hint meanwhile', () => {
    let clock = 0;
    const db = openDatabase(':memory:');
    const options = { ttlMs: 86_400_000, leaseMs: 300_000, holderTimeoutMs: 5_000, now: () => clock };
    const dead = new IdempotencyStore<string>(db, options);
    const alive = new IdempotencyStore<string>(db, options);
    expect(dead.claim('agent', 'k', 'h').kind).toBe('new');
    clock = 4_000;
    alive.heartbeat();
    expect(alive.claim('agent', 'k', 'h')).toEqual({ kind: 'in_progress', retryAfterMs: 1_000 });
    clock = 5_000;
    // The holder has been silent for its timeout: taken over, 295 s before the lease ends.
    expect(alive.claim('agent', 'k', 'h').kind).toBe('new');
    // A live holder that beats keeps its claim past the holder timeout.
    clock = 9_000;
    alive.heartbeat();
    clock = 12_000;
    expect(dead.claim('agent', 'k', 'h').kind).toBe('in_progress');
    // A holder that stops cleanly frees its claims at once.
    alive.retire();
    expect(dead.claim('agent', 'k', 'h').kind).toBe('new');
  });
});
