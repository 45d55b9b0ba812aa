import type { SqlExecutor, SqlParam } from './sql.ts';

/** Where a workflow instance is. */
export type WorkflowState = 'running' | 'waiting' | 'done' | 'failed' | 'compensated';
/** Forward through the steps, or backward undoing the ones done. */
export type WorkflowPhase = 'forward' | 'compensating';
export type StepState = 'running' | 'done' | 'failed' | 'skipped' | 'compensated';

/** States no step of the instance will run in again without an operator. */
export const SETTLED_STATES: readonly WorkflowState[] = ['done', 'compensated'];

/** One instance's row: its input, where it is, what its steps gave. */
export interface InstanceRow {
  seq: number;
  id: string;
  type: string;
  idempotency_key: string;
  request_hash: string;
  correlation_id: string;
  sequence_key: string | null;
  customer_id: string | null;
  input: string;
  state: WorkflowState;
  phase: WorkflowPhase;
  step: number;
  results: string;
  attempts: number;
  next_run_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  last_error: string | null;
  parked_reason: string | null;
  /** The trace the instance was started in (W3C traceparent and tracestate, JSON), its steps' parent; null with tracing off. */
  trace_context: string | null;
  created_at: number;
  updated_at: number;
}

export interface StepRow {
  instance_id: string;
  phase: WorkflowPhase;
  step: number;
  name: string;
  state: StepState;
  attempts: number;
  started_at: number | null;
  finished_at: number | null;
  last_error: string | null;
}

export interface HistoryRow {
  instance_id: string;
  at: number;
  event: string;
  detail: string | null;
}

/**
 * The tables of the workflow mechanism, the same on SQLite and PostgreSQL. Times are ms since
 * the epoch (BIGINT). `seq` orders instances by creation: instances that share a sequence key
 * run one at a time, in that order.
 */
function schemaOf(dialect: SqlExecutor['dialect']): string[] {
  const serial = dialect === 'postgres' ? 'BIGSERIAL PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT';
  return [
    `CREATE TABLE IF NOT EXISTS workflow_instances (
      seq ${serial},
      id TEXT NOT NULL UNIQUE,
      type TEXT NOT NULL,
      idempotency_key TEXT NOT NULL,   -- the caller's: one instance per type and key
      request_hash TEXT NOT NULL,      -- what was asked the first time with this key
      correlation_id TEXT NOT NULL,
      sequence_key TEXT,               -- e.g. a subscription: its instances run in order, one at a time
      customer_id TEXT,
      input TEXT NOT NULL,             -- JSON
      state TEXT NOT NULL,             -- running | waiting | done | failed | compensated
      phase TEXT NOT NULL,             -- forward | compensating
      step INTEGER NOT NULL,           -- the step to run (forward) or to undo (compensating)
      results TEXT NOT NULL,           -- JSON: what each step done gave, by name
      attempts INTEGER NOT NULL,       -- attempts of the current step so far
      next_run_at BIGINT NOT NULL,
      lease_owner TEXT,                -- the replica running its current step
      lease_until BIGINT,              -- past this, another replica may take the step over
      last_error TEXT,
      parked_reason TEXT,              -- why it waits for an operator (state failed)
      trace_context TEXT,              -- JSON: the traceparent it was started under, its steps' parent
      created_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL,
      UNIQUE (type, idempotency_key)
    )`,
    'CREATE INDEX IF NOT EXISTS workflow_instances_due ON workflow_instances (state, next_run_at)',
    'CREATE INDEX IF NOT EXISTS workflow_instances_sequence ON workflow_instances (sequence_key, seq)',
    'CREATE INDEX IF NOT EXISTS workflow_instances_customer ON workflow_instances (customer_id, created_at)',
    // What /metrics counts at each scrape (instances by state and type), read from the index alone.
    'CREATE INDEX IF NOT EXISTS workflow_instances_state_type ON workflow_instances (state, type)',
    `CREATE TABLE IF NOT EXISTS workflow_steps (
      instance_id TEXT NOT NULL,
      phase TEXT NOT NULL,
      step INTEGER NOT NULL,
      name TEXT NOT NULL,
      state TEXT NOT NULL,             -- running | done | failed | skipped | compensated
      attempts INTEGER NOT NULL,
      started_at BIGINT,
      finished_at BIGINT,
      last_error TEXT,
      PRIMARY KEY (instance_id, phase, step)
    )`,
    `CREATE TABLE IF NOT EXISTS workflow_history (
      n ${serial},
      instance_id TEXT NOT NULL,
      at BIGINT NOT NULL,
      event TEXT NOT NULL,
      detail TEXT
    )`,
    'CREATE INDEX IF NOT EXISTS workflow_history_instance ON workflow_history (instance_id, n)',
    `CREATE TABLE IF NOT EXISTS workflow_locks (
      name TEXT PRIMARY KEY,           -- what is held, e.g. the returns of one customer
      owner TEXT NOT NULL,             -- the step holding it (replica and instance)
      until_at BIGINT NOT NULL         -- past this, the holder is taken for dead
    )`,
    // The outbox: events recorded in the transaction that records the step that caused them.
    `CREATE TABLE IF NOT EXISTS workflow_events (
      n ${serial},
      id TEXT NOT NULL UNIQUE,
      subject TEXT NOT NULL,           -- the entity, e.g. order/SO-200001
      sequence INTEGER NOT NULL,       -- its place among the subject's events, from 1
      event TEXT NOT NULL,             -- the CloudEvent, JSON
      published_at BIGINT,             -- null until the broker took it
      UNIQUE (subject, sequence)
    )`,
    'CREATE INDEX IF NOT EXISTS workflow_events_unpublished ON workflow_events (published_at, n)',
  ];
}

/** Creates the tables (once; several replicas may start together). */
export async function migrateWorkflowStore(sql: SqlExecutor): Promise<void> {
  await sql.transaction(async (tx) => {
    // Concurrent CREATE … IF NOT EXISTS can still collide in PostgreSQL's catalog: one replica at a time.
    if (tx.dialect === 'postgres') await tx.query('SELECT pg_advisory_xact_lock(7254031)');
    for (const statement of schemaOf(tx.dialect)) await tx.run(statement);
    // A store made before instances kept their trace gets the column. Looked up first: an ALTER
    // TABLE, even one with nothing to do, waits for and then blocks every replica's work on it.
    const columns =
      tx.dialect === 'postgres'
        ? await tx.query<{ name: string }>(
            "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'workflow_instances'",
          )
        : await tx.query<{ name: string }>('PRAGMA table_info(workflow_instances)');
    if (!columns.some((column) => column.name === 'trace_context'))
      await tx.run('ALTER TABLE workflow_instances ADD COLUMN trace_context TEXT');
  });
}

/** What a claim hands a replica: instances whose current step is due, now leased to it. */
export async function claimDue(sql: SqlExecutor, owner: string, now: number, leaseMs: number, limit: number): Promise<InstanceRow[]> {
  // A step is due when its time has come and no live lease holds it; an instance waits while an
  // earlier one with its sequence key is unsettled. PostgreSQL skips rows another replica is
  // claiming at this moment (SKIP LOCKED); SQLite's write lock lets one claim run at a time.
  const lock = sql.dialect === 'postgres' ? 'FOR UPDATE SKIP LOCKED' : '';
  return sql.query<InstanceRow>(
    `UPDATE workflow_instances SET lease_owner = ?, lease_until = ?, updated_at = ?
     WHERE seq IN (
       SELECT i.seq FROM workflow_instances i
       WHERE i.state IN ('running', 'waiting') AND i.next_run_at <= ?
         AND (i.lease_until IS NULL OR i.lease_until < ?)
         AND (i.sequence_key IS NULL OR NOT EXISTS (
           SELECT 1 FROM workflow_instances p
           WHERE p.sequence_key = i.sequence_key AND p.seq < i.seq AND p.state NOT IN ('done', 'compensated')))
       ORDER BY i.next_run_at, i.seq
       LIMIT ? ${lock})
     RETURNING *`,
    [owner, now + leaseMs, now, now, now, limit],
  );
}

/** Extends a lease this replica holds; false when it holds it no more (another replica took the step over). */
export async function renewLease(sql: SqlExecutor, id: string, owner: string, until: number): Promise<boolean> {
  return (await sql.run('UPDATE workflow_instances SET lease_until = ? WHERE id = ? AND lease_owner = ?', [until, id, owner])) === 1;
}

/** Gives up leases (a stopping replica), so another replica takes the steps at once. */
export async function releaseLeases(sql: SqlExecutor, owner: string, ids: readonly string[]): Promise<void> {
  for (const id of ids)
    await sql.run('UPDATE workflow_instances SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?', [id, owner]);
}

/** Columns of an instance a transition sets. */
export type InstanceUpdate = Partial<
  Pick<
    InstanceRow,
    'state' | 'phase' | 'step' | 'results' | 'attempts' | 'next_run_at' | 'lease_owner' | 'lease_until' | 'last_error' | 'parked_reason'
  >
>;

/**
 * Applies a transition to an instance, only where `guard` still holds (the lease owner, or the
 * state an operator saw): false when it did not, and nothing was written.
 */
export async function updateInstance(
  sql: SqlExecutor,
  id: string,
  update: InstanceUpdate,
  now: number,
  guard: { owner?: string; states?: readonly WorkflowState[] },
): Promise<boolean> {
  const columns = Object.keys(update) as (keyof InstanceUpdate)[];
  const params: SqlParam[] = columns.map((column) => update[column] ?? null);
  let where = 'id = ?';
  params.push(now, id);
  if (guard.owner !== undefined) {
    where += ' AND lease_owner = ?';
    params.push(guard.owner);
  }
  if (guard.states) {
    where += ` AND state IN (${guard.states.map(() => '?').join(', ')})`;
    params.push(...guard.states);
  }
  const set = [...columns.map((column) => `${column} = ?`), 'updated_at = ?'].join(', ');
  return (await sql.run(`UPDATE workflow_instances SET ${set} WHERE ${where}`, params)) === 1;
}

/** Records a step's attempt, outcome or undoing. */
export async function upsertStep(sql: SqlExecutor, row: StepRow): Promise<void> {
  await sql.run(
    `INSERT INTO workflow_steps (instance_id, phase, step, name, state, attempts, started_at, finished_at, last_error)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (instance_id, phase, step) DO UPDATE SET
       state = excluded.state, attempts = excluded.attempts, started_at = COALESCE(workflow_steps.started_at, excluded.started_at),
       finished_at = excluded.finished_at, last_error = excluded.last_error`,
    [row.instance_id, row.phase, row.step, row.name, row.state, row.attempts, row.started_at, row.finished_at, row.last_error],
  );
}

export async function appendHistory(sql: SqlExecutor, instanceId: string, at: number, event: string, detail: string | null): Promise<void> {
  await sql.run('INSERT INTO workflow_history (instance_id, at, event, detail) VALUES (?, ?, ?, ?)', [instanceId, at, event, detail]);
}

/** Inserts an instance unless one of its type already has its idempotency key; returns the one that has it. */
export async function insertInstance(sql: SqlExecutor, row: Omit<InstanceRow, 'seq'>): Promise<{ row: InstanceRow; created: boolean }> {
  const inserted = await sql.query<InstanceRow>(
    `INSERT INTO workflow_instances (id, type, idempotency_key, request_hash, correlation_id, sequence_key, customer_id, input, state, phase,
       step, results, attempts, next_run_at, lease_owner, lease_until, last_error, parked_reason, trace_context, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (type, idempotency_key) DO NOTHING
     RETURNING *`,
    [
      row.id,
      row.type,
      row.idempotency_key,
      row.request_hash,
      row.correlation_id,
      row.sequence_key,
      row.customer_id,
      row.input,
      row.state,
      row.phase,
      row.step,
      row.results,
      row.attempts,
      row.next_run_at,
      row.lease_owner,
      row.lease_until,
      row.last_error,
      row.parked_reason,
      row.trace_context,
      row.created_at,
      row.updated_at,
    ],
  );
  if (inserted[0]) return { row: inserted[0], created: true };
  const [existing] = await sql.query<InstanceRow>('SELECT * FROM workflow_instances WHERE type = ? AND idempotency_key = ?', [
    row.type,
    row.idempotency_key,
  ]);
  if (!existing) throw new Error(`workflow ${row.type} with key ${row.idempotency_key} was neither inserted nor found`);
  return { row: existing, created: false };
}

export async function instanceByKey(sql: SqlExecutor, type: string, key: string): Promise<InstanceRow | null> {
  const [row] = await sql.query<InstanceRow>('SELECT * FROM workflow_instances WHERE type = ? AND idempotency_key = ?', [type, key]);
  return row ?? null;
}

/**
 * Takes (or renews) a named lock for `owner` until `until`: true when it is the owner's now. A
 * lock whose holder let it run out (a replica that died) is taken over.
 */
export async function takeLock(sql: SqlExecutor, name: string, owner: string, now: number, until: number): Promise<boolean> {
  const rows = await sql.query<{ owner: string }>(
    `INSERT INTO workflow_locks (name, owner, until_at) VALUES (?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_at = excluded.until_at
       WHERE workflow_locks.owner = excluded.owner OR workflow_locks.until_at < ?
     RETURNING owner`,
    [name, owner, until, now],
  );
  return rows[0]?.owner === owner;
}

/** Extends a lock its holder still holds; false when it holds it no more (it ran out and was taken). */
export async function renewLock(sql: SqlExecutor, name: string, owner: string, until: number): Promise<boolean> {
  return (await sql.run('UPDATE workflow_locks SET until_at = ? WHERE name = ? AND owner = ?', [until, name, owner])) === 1;
}

export async function releaseLock(sql: SqlExecutor, name: string, owner: string): Promise<void> {
  await sql.run('DELETE FROM workflow_locks WHERE name = ? AND owner = ?', [name, owner]);
}

export async function instanceById(sql: SqlExecutor, id: string): Promise<InstanceRow | null> {
  const [row] = await sql.query<InstanceRow>('SELECT * FROM workflow_instances WHERE id = ?', [id]);
  return row ?? null;
}

export async function stepsOf(sql: SqlExecutor, id: string): Promise<StepRow[]> {
  return sql.query<StepRow>('SELECT * FROM workflow_steps WHERE instance_id = ? ORDER BY phase DESC, step', [id]);
}

export async function historyOf(sql: SqlExecutor, id: string): Promise<HistoryRow[]> {
  return sql.query<HistoryRow>('SELECT instance_id, at, event, detail FROM workflow_history WHERE instance_id = ? ORDER BY n', [id]);
}

/** What a list of instances may be narrowed to. */
export interface InstanceFilter {
  type?: string;
  state?: WorkflowState;
  sequenceKey?: string;
  customerId?: string;
  /** Created at or after (ms). */
  since?: number;
  /** Created before the instance with this seq (the next page of a listing, newest first). */
  before?: number;
  limit?: number;
}

export async function listInstances(sql: SqlExecutor, filter: InstanceFilter): Promise<InstanceRow[]> {
  const where: string[] = [];
  const params: SqlParam[] = [];
  if (filter.type) (where.push('type = ?'), params.push(filter.type));
  if (filter.state) (where.push('state = ?'), params.push(filter.state));
  if (filter.sequenceKey) (where.push('sequence_key = ?'), params.push(filter.sequenceKey));
  if (filter.customerId) (where.push('customer_id = ?'), params.push(filter.customerId));
  if (filter.since !== undefined) (where.push('created_at >= ?'), params.push(filter.since));
  if (filter.before !== undefined) (where.push('seq < ?'), params.push(filter.before));
  params.push(Math.min(filter.limit ?? 100, 1_000));
  return sql.query<InstanceRow>(
    `SELECT * FROM workflow_instances ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`,
    params,
  );
}

/** How many instances are in each state (for metrics and the console). */
export async function countByState(sql: SqlExecutor): Promise<Record<WorkflowState, number>> {
  const rows = await sql.query<{ state: WorkflowState; n: number | string }>(
    'SELECT state, COUNT(*) AS n FROM workflow_instances GROUP BY state',
  );
  const counts = { running: 0, waiting: 0, done: 0, failed: 0, compensated: 0 };
  for (const row of rows) counts[row.state] = Number(row.n);
  return counts;
}

/** What the store holds, for metrics: instances by type and state, the parked ones' oldest, the outbox. */
export interface StoreStats {
  readonly instances: readonly { readonly type: string; readonly state: WorkflowState; readonly count: number }[];
  /** Per type with instances parked (state failed): when the longest parked of them was parked (its updated_at, ms). */
  readonly parked: readonly { readonly type: string; readonly oldestAt: number }[];
  /** Events recorded, not yet published; the oldest one's CloudEvent JSON (lowest n), null when none. */
  readonly outbox: { readonly depth: number; readonly oldestEvent: string | null };
}

/**
 * Three indexed reads, the same SQL on SQLite and PostgreSQL: the counts come from the (state,
 * type) index alone, the parked ones are few, and the outbox's unpublished rows are the head of
 * its (published_at, n) index.
 */
export async function storeStats(sql: SqlExecutor): Promise<StoreStats> {
  const instances = await sql.query<{ type: string; state: WorkflowState; n: number | string }>(
    'SELECT state, type, COUNT(*) AS n FROM workflow_instances GROUP BY state, type',
  );
  const parked = await sql.query<{ type: string; oldest: number | string }>(
    "SELECT type, MIN(updated_at) AS oldest FROM workflow_instances WHERE state = 'failed' GROUP BY type",
  );
  const [outbox] = await sql.query<{ depth: number | string; oldest: string | null }>(
    `SELECT COUNT(*) AS depth,
       (SELECT event FROM workflow_events WHERE published_at IS NULL ORDER BY n LIMIT 1) AS oldest
     FROM workflow_events WHERE published_at IS NULL`,
  );
  return {
    instances: instances.map((row) => ({ type: row.type, state: row.state, count: Number(row.n) })),
    parked: parked.map((row) => ({ type: row.type, oldestAt: Number(row.oldest) })),
    outbox: { depth: Number(outbox?.depth ?? 0), oldestEvent: outbox?.oldest ?? null },
  };
}

/** Records events in the outbox, in the caller's transaction; each gets the next sequence of its subject. */
export async function recordEvents(
  sql: SqlExecutor,
  drafts: readonly { id: string; subject: string; make: (sequence: number) => string }[],
): Promise<void> {
  for (const draft of drafts) {
    const [row] = await sql.query<{ last: number | string | null }>('SELECT MAX(sequence) AS last FROM workflow_events WHERE subject = ?', [
      draft.subject,
    ]);
    const sequence = Number(row?.last ?? 0) + 1;
    await sql.run('INSERT INTO workflow_events (id, subject, sequence, event, published_at) VALUES (?, ?, ?, ?, NULL)', [
      draft.id,
      draft.subject,
      sequence,
      draft.make(sequence),
    ]);
  }
}

/**
 * Hands unpublished events to `publish`, oldest first, and marks them published, in one
 * transaction: on PostgreSQL rows another replica is relaying are skipped. A publish that fails
 * leaves them for the next round (at least once: consumers dedupe by id).
 */
export async function relayEvents(
  sql: SqlExecutor,
  publish: (events: string[]) => Promise<void>,
  now: number,
  limit = 100,
): Promise<number> {
  // Most polls find nothing to send: that is one indexed read, not a write lock (SQLite) per poll.
  if (!(await sql.query('SELECT 1 FROM workflow_events WHERE published_at IS NULL LIMIT 1')).length) return 0;
  if (sql.dialect === 'sqlite') {
    // One replica relays a SQLite store: no lock is held while the broker is asked, so a broker
    // that is slow to refuse holds up no step (SQLite has one writer at a time).
    const rows = await sql.query<{ n: number | string; event: string }>(
      'SELECT n, event FROM workflow_events WHERE published_at IS NULL ORDER BY n LIMIT ?',
      [limit],
    );
    if (!rows.length) return 0;
    await publish(rows.map((row) => row.event));
    await sql.transaction(async (tx) => {
      for (const row of rows) await tx.run('UPDATE workflow_events SET published_at = ? WHERE n = ?', [now, Number(row.n)]);
    });
    return rows.length;
  }
  // Replicas of a PostgreSQL store relay side by side, each skipping the rows another is sending.
  return sql.transaction(async (tx) => {
    const lock = tx.dialect === 'postgres' ? 'FOR UPDATE SKIP LOCKED' : '';
    const rows = await tx.query<{ n: number | string; event: string }>(
      `SELECT n, event FROM workflow_events WHERE published_at IS NULL ORDER BY n LIMIT ? ${lock}`,
      [limit],
    );
    if (!rows.length) return 0;
    await publish(rows.map((row) => row.event));
    for (const row of rows) await tx.run('UPDATE workflow_events SET published_at = ? WHERE n = ?', [now, Number(row.n)]);
    return rows.length;
  });
}
