import { createHash, randomUUID } from 'node:crypto';
import { inBackground } from '../api-budget.ts';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Logger } from '../logger.ts';
import { contextFrom, failSpan, inSpan, traceCarrier, type Span } from '../tracing.ts';
import type { EventBroker } from '../events/broker.ts';
import { canonicalEvent, type CanonicalEvent, type EventDraft } from '../events/cloudevent.ts';
import { checkEvent } from '../events/schemas.ts';
import type { SqlExecutor } from './sql.ts';
import {
  appendHistory,
  claimDue,
  countByState,
  historyOf,
  insertInstance,
  instanceById,
  instanceByKey,
  listInstances,
  migrateWorkflowStore,
  recordEvents,
  relayEvents,
  releaseLeases,
  releaseLock,
  renewLease,
  renewLock,
  stepsOf,
  storeStats,
  takeLock,
  updateInstance,
  upsertStep,
  type HistoryRow,
  type InstanceFilter,
  type InstanceRow,
  type StepRow,
  type StepState,
  type WorkflowPhase,
  type WorkflowState,
} from './store.ts';

export type { InstanceFilter, WorkflowPhase, WorkflowState } from './store.ts';

/** How a step that failed for a passing reason is tried again, then parked. */
export interface RetryPolicy {
  /** Attempts in all, the first included; then the instance is parked for an operator. */
  readonly maxAttempts: number;
  /** Backoff before the second attempt (ms); it doubles per attempt, with full jitter. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** About twenty minutes of retries: a system down for a while delays a step, it does not fail it. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 12, baseDelayMs: 1_000, maxDelayMs: 5 * 60_000 };

/** What a step's code is given. */
export interface StepContext<I> {
  readonly instanceId: string;
  readonly correlationId: string;
  readonly input: I;
  /** What the steps done so far gave, by step name. */
  readonly results: Readonly<Record<string, unknown>>;
  /**
   * The key to send with the step's write: the same on every attempt of this step of this
   * instance, whichever replica makes it, so the system applies the write once.
   */
  readonly idempotencyKey: string;
  /** 1 on the first attempt. */
  readonly attempt: number;
  /** Aborted when this replica lost the step's lease (another one has it now) or stops. */
  readonly signal: AbortSignal;
  /**
   * Runs `work` holding the named lock, shared by every replica on the store: no other step
   * holding it runs meanwhile (e.g. two returns of one customer checked and created one after the
   * other). Waits for it at most `waitMs` (default: the lease), then fails the attempt (retried).
   */
  exclusive<T>(name: string, work: () => Promise<T>, waitMs?: number): Promise<T>;
  /**
   * Records a canonical event of what this step did (checked against its type's schema). It is
   * written in the transaction that records the step, so it is published if and only if the
   * step's result is recorded: an attempt that fails, or that lost its lease, publishes nothing.
   */
  emit(draft: EventDraft): void;
}

/**
 * What a step returns to end its workflow there, done, with the steps after it skipped: the
 * business said no (a return refused on ERP facts) and nothing is left to do or undo.
 */
export class WorkflowEnd {
  constructor(
    readonly output: unknown,
    readonly reason: string,
  ) {}
}

export const endWorkflow = (output: unknown, reason: string) => new WorkflowEnd(output, reason);

export interface StepDefinition<I> {
  readonly name: string;
  /** Does the step's work and resolves to what later steps may use (JSON). */
  run(context: StepContext<I>): Promise<unknown>;
  /** Undoes the step where the business allows it, after a later step failed for good. */
  compensate?(context: StepContext<I> & { readonly output: unknown }): Promise<void>;
  readonly retry?: Partial<RetryPolicy>;
  /**
   * What a refusal of this step (PermanentStepError) leads to: the steps before it undone (the
   * default), or the workflow parked for an operator, nothing undone (a step after which undoing
   * is worse than waiting: the CRM already shows the order).
   */
  readonly onRefusal?: 'compensate' | 'park';
}

export interface WorkflowDefinition<I = any> {
  readonly type: string;
  readonly steps: readonly StepDefinition<I>[];
  /** The customer an instance concerns, for filters (from its input). */
  customerOf?(input: I): string | null;
}

/**
 * Thrown by a step that can never succeed as asked (a business refusal): no retry; the steps
 * done before are compensated, and the instance shows why.
 */
export class PermanentStepError extends Error {
  override name = 'PermanentStepError';
  constructor(
    message: string,
    readonly code: string = 'STEP_REFUSED',
  ) {
    super(message);
  }
}

/** Thrown by `start` when the key was used before with a different input. */
export class WorkflowKeyReusedError extends Error {
  override name = 'WorkflowKeyReusedError';
  readonly code = 'IDEMPOTENCY_KEY_REUSED';
}

/** One step of an instance as people see it: done, to do, or where it went wrong. */
export interface StepView {
  readonly name: string;
  readonly phase: WorkflowPhase;
  readonly state: StepState | 'pending';
  readonly attempts: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly lastError: string | null;
}

export interface WorkflowInstance<I = unknown> {
  /** Creation order, across replicas: the cursor of a listing. */
  readonly seq: number;
  readonly id: string;
  readonly type: string;
  readonly correlationId: string;
  readonly idempotencyKey: string;
  /** What the first request with the key asked (a digest of its fingerprint). */
  readonly requestHash: string;
  readonly sequenceKey: string | null;
  readonly customerId: string | null;
  readonly input: I;
  readonly state: WorkflowState;
  readonly phase: WorkflowPhase;
  /** The step to run (or to undo) next; null once settled. */
  readonly currentStep: string | null;
  readonly results: Readonly<Record<string, unknown>>;
  readonly attempts: number;
  readonly nextRunAt: number;
  readonly lastError: string | null;
  /** Why the instance waits for an operator (state failed). */
  readonly parkedReason: string | null;
  /** The W3C trace id it was started in (its steps' spans are in that trace); null when it was not traced. */
  readonly traceId: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface WorkflowDetail<I = unknown> extends WorkflowInstance<I> {
  readonly steps: readonly StepView[];
  readonly history: readonly { readonly at: number; readonly event: string; readonly detail: string | null }[];
}

export interface StartOptions {
  /** The caller's key: the same key (and input) starts one instance, however often it is sent. */
  readonly idempotencyKey: string;
  readonly correlationId: string;
  /** Instances with one sequence key (a subscription, say) run one after the other, in the order started. */
  readonly sequenceKey?: string | null;
  /**
   * What makes two requests with one key the same request (default: the input). The input may
   * hold more, read when the first one came (the facts it was decided on).
   */
  readonly fingerprint?: unknown;
}

/** What an attempt of a step came to, as EngineOptions.onStep is told. */
export type StepOutcome = 'done' | 'retried' | 'failed' | 'compensated';

export interface StepEvent {
  readonly type: string;
  readonly step: string;
  /**
   * done: the step's work recorded (forward); compensated: its undoing recorded; retried: the
   * attempt failed and another is scheduled; failed: it failed for good (the instance is parked,
   * or its compensation begins).
   */
  readonly outcome: StepOutcome;
  /** 1 on the first attempt. */
  readonly attempt: number;
}

/** Per workflow type, what its instances in the store are (WorkflowEngine.stats). */
export interface WorkflowTypeStats {
  readonly states: Readonly<Record<WorkflowState, number>>;
  /** How long (ms) the longest parked instance of the type has waited (since it was parked); null when none is. */
  readonly oldestParkedAgeMs: number | null;
}

/** What the store holds, store-wide (every replica on it reads the same), for metrics. */
export interface WorkflowStats {
  /** Every type this engine runs (zeros where it has no instance), and any other type the store holds. */
  readonly types: Readonly<Record<string, WorkflowTypeStats>>;
  /** Events recorded, not yet published; the age (ms) of the oldest (its CloudEvent time), null when none. */
  readonly outbox: { readonly depth: number; readonly oldestAgeMs: number | null };
}

/** What an operator may do with a parked instance. */
export type OperatorAction = 'retry' | 'skip' | 'compensate';

export interface WorkflowEngine {
  /** This replica's name in leases. */
  readonly owner: string;
  /** Starts an instance, or finds the one its key started. */
  start<I>(type: string, input: I, options: StartOptions): Promise<{ instance: WorkflowInstance<I>; created: boolean }>;
  get(id: string): Promise<WorkflowDetail | null>;
  /** The instance of `type` a caller's idempotency key started, if any. */
  find<I = unknown>(type: string, idempotencyKey: string): Promise<WorkflowInstance<I> | null>;
  /** Whether `fingerprint` (or an input) is what the instance was started with. */
  sameRequest(instance: WorkflowInstance, fingerprint: unknown): boolean;
  /**
   * Resolves to the instance once `until` holds for it, or as it is when `timeoutMs` has passed
   * (whichever replica runs it); null when there is no such instance.
   */
  waitFor(id: string, until: (instance: WorkflowInstance) => boolean, timeoutMs: number): Promise<WorkflowInstance | null>;
  list(filter?: InstanceFilter): Promise<WorkflowInstance[]>;
  counts(): Promise<Record<WorkflowState, number>>;
  /** Instances by type and state, the parked ones' oldest, the outbox's depth and oldest: a few indexed reads. */
  stats(): Promise<WorkflowStats>;
  /** Claims what is due and runs it; resolves when those instances have stopped (settled, waiting or leased away). */
  runDue(): Promise<number>;
  /** Polls for due steps every pollMs until stop(). */
  startPolling(): void;
  /** Wakes the poller now (after a start, say) instead of at its next turn. */
  wake(): void;
  /** An operator's decision on a parked instance (state failed), with why (kept in the history); the instance as it is after it. */
  act(id: string, action: OperatorAction, operator: string, reason?: string | null): Promise<WorkflowDetail>;
  /** Hands the outbox's unpublished events to the broker now; resolves when that round is over. */
  publishEvents(): Promise<void>;
  /** Stops claiming, lets the steps in flight finish (at most `graceMs`), gives up the leases. */
  stop(graceMs?: number): Promise<void>;
}

export interface EngineOptions {
  readonly sql: SqlExecutor;
  readonly workflows: readonly WorkflowDefinition[];
  readonly logger: Logger;
  /** This replica's name in leases (default: host, pid and a random part). */
  readonly owner?: string;
  /** How long a claimed step is this replica's without renewal (renewed every third of it while the step runs). */
  readonly leaseMs?: number;
  readonly pollMs?: number;
  /** Instances this replica runs at once. */
  readonly concurrency?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Where the steps' events go, and who they say told them; none: emit() records nothing. */
  readonly events?: { readonly broker: EventBroker; readonly source: string };
  /** Told of each outcome of a step's attempt once it is recorded (metrics); what it throws is logged, not raised. */
  readonly onStep?: (event: StepEvent) => void;
}

/** Thrown by `act` when the action does not apply to the instance as it is. */
export class OperatorActionError extends Error {
  override name = 'OperatorActionError';
  constructor(
    message: string,
    readonly code: 'NOT_FOUND' | 'NOT_PARKED' | 'NOTHING_TO_SKIP',
  ) {
    super(message);
  }
}

/** The trace a workflow is started in, as its row keeps it; null with tracing off. */
function traceText(): string | null {
  const carrier = traceCarrier();
  return carrier ? JSON.stringify(carrier) : null;
}

function traceOf(row: InstanceRow): Record<string, unknown> | null {
  if (!row.trace_context) return null;
  try {
    return JSON.parse(row.trace_context) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The trace id of the traceparent a row keeps, when that trace was sampled (its spans were recorded). */
function traceIdOf(row: InstanceRow): string | null {
  const traceparent = traceOf(row)?.['traceparent'];
  const [, traceId, , flags] = typeof traceparent === 'string' ? traceparent.split('-') : [];
  const sampled = flags !== undefined && /^[0-9a-f]{2}$/.test(flags) && (parseInt(flags, 16) & 1) === 1;
  return sampled && traceId && /^[0-9a-f]{32}$/.test(traceId) && !/^0+$/.test(traceId) ? traceId : null;
}

const ERROR_TEXT_LIMIT = 2_000;
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, ERROR_TEXT_LIMIT);

/** The same input, whatever the order of its fields, hashes the same. */
function inputHash(type: string, input: unknown): string {
  const canonical = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(canonical)
      : value && typeof value === 'object'
        ? Object.fromEntries(
            Object.keys(value)
              .sort()
              .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
          )
        : value;
  return createHash('sha256')
    .update(JSON.stringify([type, canonical(input)]))
    .digest('hex');
}

/**
 * The durable workflow mechanism every process uses. An instance runs its steps in order, one
 * at a time, each under a lease held by one replica (renewed while the step runs): a replica
 * that dies mid-step loses the lease when it runs out, and another replica runs the step again
 * with the same idempotency key, so the system it writes to applies the write once. A step that
 * fails for a passing reason is retried with capped exponential backoff and full jitter, then
 * parked (state failed, with its reason) for an operator to retry, skip or compensate. A step
 * that fails for good (PermanentStepError) has the steps done before it compensated, newest
 * first, where they can be. Every transition is kept in the instance's history.
 */
export async function createWorkflowEngine(options: EngineOptions): Promise<WorkflowEngine> {
  const { sql, logger } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const leaseMs = options.leaseMs ?? 30_000;
  const pollMs = options.pollMs ?? 500;
  const concurrency = options.concurrency ?? 8;
  const owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const definitions = new Map(options.workflows.map((workflow) => [workflow.type, workflow]));
  const retryOf = (step: StepDefinition<unknown>): RetryPolicy => ({ ...DEFAULT_RETRY, ...options.retry, ...step.retry });

  await migrateWorkflowStore(sql);

  const running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /** Emits an instance's id when this replica recorded a transition of it (waitFor listens). */
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const changed = (id: string) => {
    changes.emit('change', id);
    if (options.events) void relay();
  };
  let stopping = false;
  let poller: NodeJS.Timeout | null = null;
  const told = (type: string, step: string, outcome: StepOutcome, attempt: number) => {
    if (!options.onStep) return;
    try {
      options.onStep({ type, step, outcome, attempt });
    } catch (error) {
      logger.warn({ err: error }, 'onStep failed');
    }
  };

  /**
   * Appends to an instance's history, and, with events on, records in the same transaction the
   * `concord.workflow.changed` event that tells watchers (a console's workflowChanged) to look again.
   */
  const history = async (executor: SqlExecutor, id: string, event: string, detail: string | null = null, correlationId = id) => {
    await appendHistory(executor, id, now(), event, detail);
    const events = options.events;
    if (!events) return;
    const eventId = randomUUID();
    const draft = { type: 'concord.workflow.changed', subject: `workflow/${id}`, data: { workflowId: id, change: event } };
    await recordEvents(executor, [
      {
        id: eventId,
        subject: draft.subject,
        make: (sequence: number) =>
          JSON.stringify(canonicalEvent(draft, { id: eventId, source: events.source, correlationId, sequence, at: new Date(now()) })),
      },
    ]);
  };

  /**
   * Runs the instance's current step (and the next ones, while it holds the lease and they are
   * due at once) until it settles, waits, is parked or its lease is lost.
   */
  async function drive(claimed: InstanceRow, abort: AbortController): Promise<void> {
    let row = claimed;
    const definition = definitions.get(row.type);
    const log = logger.child({ workflowId: row.id, workflowType: row.type, correlationId: row.correlation_id });
    if (!definition) {
      // Another version of the service knows this type: the lease runs out and a replica that does takes it.
      log.warn({ event: 'workflow.unknown_type' }, 'workflow of a type this replica does not run');
      return;
    }
    const renew = setInterval(
      () => {
        void renewLease(sql, row.id, owner, now() + leaseMs).then(
          (held) => {
            if (!held) abort.abort(new Error('lease lost'));
          },
          () => undefined,
        );
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    try {
      while (!abort.signal.aborted) {
        const current = row;
        // Each step is a span in the trace the instance was started in, however much later it runs.
        const next = await inSpan(
          `workflow ${current.type}`,
          { parent: contextFrom(traceOf(current)), attributes: { 'workflow.id': current.id, 'workflow.type': current.type } },
          (span) => step(current, definition, abort.signal, log, span),
        );
        if (!next) return;
        row = next;
      }
    } finally {
      clearInterval(renew);
    }
  }

  /** One step of the instance; the row to go on with when the next step is due now (lease kept), else null. */
  async function step(
    row: InstanceRow,
    definition: WorkflowDefinition,
    signal: AbortSignal,
    log: Logger,
    span: Span | null,
  ): Promise<InstanceRow | null> {
    const results = JSON.parse(row.results) as Record<string, unknown>;
    const input = JSON.parse(row.input) as unknown;
    const compensating = row.phase === 'compensating';
    // Compensation walks back over the steps done, skipping those that cannot be undone.
    if (compensating) {
      let index = row.step;
      while (index >= 0 && !definition.steps[index]?.compensate) index--;
      if (index < 0) {
        // Nothing (more) to undo. Where nothing was undone at all, the failure stands, for an operator.
        const recorded = await stepsOf(sql, row.id);
        const undone = recorded.some((step) => step.phase === 'compensating' && step.state === 'compensated');
        if (undone) {
          await settle(row, { state: 'compensated', step: -1 }, 'compensated', null);
          log.info({ event: 'workflow.compensated' }, 'workflow compensated');
        } else {
          // Parked at the step that was refused: an operator who fixed its cause retries it.
          const refused = recorded.filter((step) => step.phase === 'forward' && step.state === 'failed').at(-1)?.step ?? 0;
          const reason = `failed for good with nothing to undo: ${row.last_error ?? 'no reason given'}`;
          await settle(row, { state: 'failed', phase: 'forward', step: refused, parked_reason: reason }, 'parked', reason);
          log.error({ event: 'workflow.parked', reason }, 'workflow parked for an operator');
        }
        return null;
      }
      if (index !== row.step) row = { ...row, step: index, attempts: 0 };
    }
    const definitionStep = definition.steps[row.step];
    if (!definitionStep) {
      await settle(row, { state: 'done' }, 'done', null);
      return null;
    }
    const attempt = row.attempts + 1;
    span?.updateName(`${compensating ? 'undo' : 'step'} ${definitionStep.name}`);
    span?.setAttributes({ 'workflow.step': definitionStep.name, 'workflow.phase': row.phase, 'workflow.step.attempt': attempt });
    const startedAt = now();
    const stepRow: StepRow = {
      instance_id: row.id,
      phase: row.phase,
      step: row.step,
      name: definitionStep.name,
      state: 'running',
      attempts: attempt,
      started_at: startedAt,
      finished_at: null,
      last_error: null,
    };
    await upsertStep(sql, stepRow);
    const emitted: EventDraft[] = [];
    const context: StepContext<unknown> = {
      instanceId: row.id,
      correlationId: row.correlation_id,
      input,
      results,
      idempotencyKey: `${row.id}:${compensating ? 'undo:' : ''}${definitionStep.name}`,
      attempt,
      signal,
      exclusive: (name, work, waitMs = leaseMs) => exclusive(name, row.id, work, waitMs, signal),
      emit: (draft) => {
        checkEvent(draft);
        emitted.push(draft);
      },
    };
    let output: unknown;
    try {
      if (compensating) await definitionStep.compensate!({ ...context, output: results[definitionStep.name] ?? null });
      else output = (await definitionStep.run(context)) ?? null;
    } catch (error) {
      if (signal.aborted) {
        log.warn({ event: 'workflow.lease_lost', step: definitionStep.name }, 'step abandoned: another replica has it');
        return null;
      }
      if (span) failSpan(span, error, error instanceof PermanentStepError ? 'STEP_REFUSED' : 'STEP_FAILED');
      return failed(row, definitionStep, stepRow, error, log);
    }
    // The step's work is done; what follows records it, only while this replica holds the lease.
    const ended = !compensating && output instanceof WorkflowEnd ? output : null;
    if (ended) output = ended.output ?? null;
    const last = !compensating && (ended !== null || row.step === definition.steps.length - 1);
    const nextStep = compensating ? row.step - 1 : row.step + 1;
    const update = {
      state: 'running' as WorkflowState,
      step: nextStep,
      results: compensating ? row.results : JSON.stringify({ ...results, [definitionStep.name]: output }),
      attempts: 0,
      next_run_at: now(),
      // While compensating, the error that made it necessary stays on the instance.
      last_error: compensating ? row.last_error : null,
      lease_until: now() + leaseMs,
    };
    const recorded = await sql.transaction(async (tx) => {
      const settledNow = last ? { state: 'done' as WorkflowState, lease_owner: null, lease_until: null } : {};
      if (!(await updateInstance(tx, row.id, { ...update, ...settledNow }, now(), { owner }))) return false;
      await upsertStep(tx, { ...stepRow, state: compensating ? 'compensated' : 'done', finished_at: now() });
      await history(
        tx,
        row.id,
        compensating ? 'step compensated' : 'step done',
        `${definitionStep.name} (attempt ${attempt})`,
        row.correlation_id,
      );
      if (options.events && emitted.length) {
        const { source } = options.events;
        await recordEvents(
          tx,
          emitted.map((draft) => {
            const id = randomUUID();
            return {
              id,
              subject: draft.subject,
              make: (sequence: number) =>
                JSON.stringify(canonicalEvent(draft, { id, source, correlationId: row.correlation_id, sequence, at: new Date(now()) })),
            };
          }),
        );
      }
      if (ended)
        for (let index = row.step + 1; index < definition.steps.length; index++)
          await upsertStep(tx, {
            ...stepRow,
            step: index,
            name: definition.steps[index]!.name,
            state: 'skipped',
            attempts: 0,
            started_at: null,
            finished_at: now(),
          });
      if (last) await history(tx, row.id, 'done', ended ? `ended after ${definitionStep.name}: ${ended.reason}` : null, row.correlation_id);
      return true;
    });
    changed(row.id);
    if (recorded && emitted.length) relay();
    if (!recorded) {
      log.warn({ event: 'workflow.lease_lost', step: definitionStep.name }, 'step done, but another replica had taken it over');
      return null;
    }
    told(row.type, definitionStep.name, compensating ? 'compensated' : 'done', attempt);
    log.info(
      { event: compensating ? 'workflow.step_compensated' : 'workflow.step_done', step: definitionStep.name, attempt },
      compensating ? 'step compensated' : 'step done',
    );
    if (last) {
      log.info({ event: 'workflow.done' }, 'workflow done');
      return null;
    }
    if (stopping) {
      await releaseLeases(sql, owner, [row.id]);
      return null;
    }
    return { ...row, ...update };
  }

  /** A step threw: retried later, parked, or (failed for good) the compensation begins. */
  async function failed(
    row: InstanceRow,
    definitionStep: StepDefinition<unknown>,
    stepRow: StepRow,
    error: unknown,
    log: Logger,
  ): Promise<null> {
    const message = errorText(error);
    const attempt = stepRow.attempts;
    const policy = retryOf(definitionStep);
    const compensating = row.phase === 'compensating';
    const permanent = error instanceof PermanentStepError;
    const parkOnRefusal = permanent && !compensating && definitionStep.onRefusal === 'park';
    let outcome: StepOutcome = 'failed';
    const applied = await sql.transaction(async (tx) => {
      let update: Parameters<typeof updateInstance>[2];
      let event: string;
      if (permanent && !compensating && !parkOnRefusal) {
        // Failed for good: undo what was done, newest first.
        update = { state: 'running', phase: 'compensating', step: row.step - 1, attempts: 0, next_run_at: now(), last_error: message };
        event = 'step failed for good; compensating';
        log.warn({ event: 'workflow.step_refused', step: definitionStep.name, error: message }, 'step failed for good; compensating');
      } else if (!permanent && attempt < policy.maxAttempts) {
        const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
        const delay = Math.floor(random() * ceiling);
        update = { state: 'waiting', attempts: attempt, next_run_at: now() + delay, last_error: message };
        event = `step failed; retry in ${delay} ms`;
        outcome = 'retried';
        log.warn(
          { event: 'workflow.retry_scheduled', step: definitionStep.name, attempt, delayMs: delay, error: message },
          'step failed; will retry',
        );
      } else {
        const reason = parkOnRefusal
          ? `${definitionStep.name} was refused: ${message}`
          : permanent
            ? `${definitionStep.name} could not be undone: ${message}`
            : `${definitionStep.name} failed ${attempt} times: ${message}`;
        update = { state: 'failed', attempts: attempt, last_error: message, parked_reason: reason };
        event = 'parked';
        log.error({ event: 'workflow.parked', step: definitionStep.name, attempt, reason }, 'workflow parked for an operator');
      }
      if (!(await updateInstance(tx, row.id, { ...update, lease_owner: null, lease_until: null }, now(), { owner }))) return false;
      await upsertStep(tx, { ...stepRow, state: 'failed', finished_at: now(), last_error: message });
      await history(tx, row.id, event, `${definitionStep.name} (attempt ${attempt}): ${message}`, row.correlation_id);
      return true;
    });
    changed(row.id);
    if (applied) told(row.type, definitionStep.name, outcome, attempt);
    return null;
  }

  async function settle(row: InstanceRow, update: Parameters<typeof updateInstance>[2], event: string, detail: string | null) {
    await sql.transaction(async (tx) => {
      if (await updateInstance(tx, row.id, { ...update, lease_owner: null, lease_until: null }, now(), { owner }))
        await history(tx, row.id, event, detail, row.correlation_id);
    });
    changed(row.id);
  }

  /**
   * Runs `work` holding a lock of the store (see StepContext.exclusive), renewed while it runs.
   * The holder is this attempt alone (a later attempt of the instance is another holder). A lock
   * found taken over at a renewal (this replica stalled past the lease) fails the attempt once
   * the work is done, so the step is tried again under the lock.
   */
  async function exclusive<T>(name: string, instance: string, work: () => Promise<T>, waitMs: number, signal: AbortSignal): Promise<T> {
    const holder = `${owner}:${instance}:${randomUUID().slice(0, 8)}`;
    const waitUntil = Date.now() + waitMs;
    while (!(await takeLock(sql, name, holder, now(), now() + leaseMs))) {
      if (Date.now() >= waitUntil || signal.aborted) throw new Error(`${name} is held by another workflow (waited ${waitMs} ms)`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let lost = false;
    let renewal: Promise<unknown> = Promise.resolve();
    const renew = setInterval(
      () => {
        renewal = renewLock(sql, name, holder, now() + leaseMs).then(
          (held) => {
            if (!held) lost = true;
          },
          () => undefined,
        );
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    try {
      const result = await work();
      if (lost) throw new Error(`${name} was taken over while this attempt held it; trying again`);
      return result;
    } finally {
      clearInterval(renew);
      // A renewal in flight lands before the release, never after it.
      await renewal;
      await releaseLock(sql, name, holder).catch(() => undefined);
    }
  }

  /** Runs one claimed instance in the background; when it stops, the poller claims again at once. */
  function launch(row: InstanceRow): Promise<void> {
    const abort = new AbortController();
    // Steps are background work: near a vendor's limit, agents' queries go first (platform/api-budget.ts).
    const done = inBackground(() => drive(row, abort))
      .catch((error: unknown) => {
        // The store failed under the step (a database outage): the lease runs out and the step is tried again.
        logger.error({ err: error, workflowId: row.id }, 'workflow step could not be recorded');
      })
      .finally(() => {
        running.delete(row.id);
        if (poller) tick();
      });
    running.set(row.id, { abort, done });
    return done;
  }

  /** Claims as many due instances as there are free slots (one claim at a time in this process). */
  let claiming: Promise<Promise<void>[]> = Promise.resolve([]);
  const claimAndLaunch = (): Promise<Promise<void>[]> => {
    claiming = claiming.then(
      async () => {
        const free = concurrency - running.size;
        if (free <= 0 || stopping) return [];
        return (await claimDue(sql, owner, now(), leaseMs, free)).map(launch);
      },
      () => [],
    );
    return claiming;
  };

  async function runDue(): Promise<number> {
    const runs = await claimAndLaunch();
    await Promise.all(runs);
    return runs.length;
  }

  /**
   * Publishes what the outbox holds, one round at a time in this replica: asked again while a
   * round runs, it runs once more after it. While the broker refuses, rounds wait a backoff
   * (0.5 s doubling to 5 s) instead of trying at every step, so a broker that hangs until its
   * timeout does not slow the steps; `force` (publishEvents, stop) tries at once.
   */
  let relaying: Promise<unknown> = Promise.resolve();
  let relayRunning = false;
  let relayAgain = false;
  let relayFailures = 0;
  let relayBlockedUntil = 0;
  function relay(force = false): Promise<unknown> {
    const events = options.events;
    if (!events) return relaying;
    if (relayRunning) {
      relayAgain = true;
      return relaying;
    }
    if (!force && relayFailures > 0 && Date.now() < relayBlockedUntil) return relaying;
    relayRunning = true;
    relaying = (async () => {
      try {
        do {
          relayAgain = false;
          while (
            (await relayEvents(sql, (rows) => events.broker.publish(rows.map((row) => JSON.parse(row) as CanonicalEvent)), now())) > 0
          );
        } while (relayAgain);
        relayFailures = 0;
      } catch (error) {
        relayFailures += 1;
        const delayMs = Math.min(5_000, 500 * 2 ** (relayFailures - 1));
        relayBlockedUntil = Date.now() + delayMs;
        logger.warn({ err: error, retryInMs: delayMs }, 'events not published yet; the outbox keeps them for the next round');
      } finally {
        relayRunning = false;
      }
    })();
    return relaying;
  }

  let ticking = false;
  let tickAgain = false;
  function tick(): void {
    if (stopping) return;
    void relay();
    if (ticking) {
      tickAgain = true;
      return;
    }
    ticking = true;
    claimAndLaunch()
      .catch((error: unknown) => logger.error({ err: error }, 'claiming due workflow steps failed'))
      .finally(() => {
        ticking = false;
        if (tickAgain) {
          tickAgain = false;
          tick();
        }
      });
  }

  function viewOf<I>(row: InstanceRow): WorkflowInstance<I> {
    const definition = definitions.get(row.type);
    const settled = row.state === 'done' || row.state === 'compensated';
    return {
      seq: Number(row.seq),
      id: row.id,
      type: row.type,
      correlationId: row.correlation_id,
      idempotencyKey: row.idempotency_key,
      requestHash: row.request_hash,
      sequenceKey: row.sequence_key,
      customerId: row.customer_id,
      input: JSON.parse(row.input) as I,
      state: row.state,
      phase: row.phase,
      currentStep: settled ? null : (definition?.steps[row.step]?.name ?? null),
      results: JSON.parse(row.results) as Record<string, unknown>,
      attempts: row.attempts,
      nextRunAt: row.next_run_at,
      lastError: row.last_error,
      parkedReason: row.parked_reason,
      traceId: traceIdOf(row),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  async function detailOf(row: InstanceRow): Promise<WorkflowDetail> {
    const [stepRows, historyRows] = await Promise.all([stepsOf(sql, row.id), historyOf(sql, row.id)]);
    const definition = definitions.get(row.type);
    const recorded = new Map(stepRows.map((step) => [`${step.phase}:${step.step}`, step]));
    const forward: StepView[] = (definition?.steps ?? []).map((step, index) =>
      viewOfStep(recorded.get(`forward:${index}`), step.name, 'forward'),
    );
    const undone = stepRows.filter((step) => step.phase === 'compensating').map((step) => viewOfStep(step, step.name, 'compensating'));
    return {
      ...viewOf(row),
      steps: [...forward, ...undone],
      history: historyRows.map((entry: HistoryRow) => ({ at: entry.at, event: entry.event, detail: entry.detail })),
    };
  }

  function viewOfStep(row: StepRow | undefined, name: string, phase: WorkflowPhase): StepView {
    return {
      name,
      phase,
      state: row?.state ?? 'pending',
      attempts: row?.attempts ?? 0,
      startedAt: row?.started_at ?? null,
      finishedAt: row?.finished_at ?? null,
      lastError: row?.last_error ?? null,
    };
  }

  async function get(id: string): Promise<WorkflowDetail | null> {
    const row = await instanceById(sql, id);
    return row ? detailOf(row) : null;
  }

  return {
    owner,

    async start<I>(type: string, input: I, startOptions: StartOptions) {
      const definition = definitions.get(type);
      if (!definition) throw new Error(`no workflow of type ${type}`);
      const at = now();
      const hash = inputHash(type, startOptions.fingerprint ?? input);
      const { row, created } = await sql.transaction(async (tx) => {
        const result = await insertInstance(tx, {
          id: `wf_${randomUUID()}`,
          type,
          idempotency_key: startOptions.idempotencyKey,
          request_hash: hash,
          correlation_id: startOptions.correlationId,
          sequence_key: startOptions.sequenceKey ?? null,
          customer_id: definition.customerOf?.(input) ?? null,
          input: JSON.stringify(input),
          state: 'running',
          phase: 'forward',
          step: 0,
          results: '{}',
          attempts: 0,
          next_run_at: at,
          lease_owner: null,
          lease_until: null,
          last_error: null,
          parked_reason: null,
          trace_context: traceText(),
          created_at: at,
          updated_at: at,
        });
        if (result.created) await history(tx, result.row.id, 'started', null, result.row.correlation_id);
        return result;
      });
      if (!created && row.request_hash !== hash)
        throw new WorkflowKeyReusedError(`The idempotency key was used before for a different ${type}; use a new key for a new request.`);
      if (created) {
        logger.info(
          { event: 'workflow.started', workflowId: row.id, workflowType: type, correlationId: row.correlation_id },
          'workflow started',
        );
        if (poller) tick();
      }
      return { instance: viewOf<I>(row), created };
    },

    get,

    async find<I>(type: string, idempotencyKey: string) {
      const row = await instanceByKey(sql, type, idempotencyKey);
      return row ? viewOf<I>(row) : null;
    },

    sameRequest(instance, fingerprint) {
      return instance.requestHash === inputHash(instance.type, fingerprint);
    },

    async waitFor(id, until, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let wake: (() => void) | null = null;
      const onChange = (changedId: string) => {
        if (changedId === id) wake?.();
      };
      changes.on('change', onChange);
      try {
        for (;;) {
          const row = await instanceById(sql, id);
          if (!row) return null;
          const instance = viewOf(row);
          const left = deadline - Date.now();
          if (until(instance) || left <= 0) return instance;
          // Woken by this replica's own transitions at once; another replica's are seen by polling.
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(100, left));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = null;
        }
      } finally {
        changes.off('change', onChange);
      }
    },

    async list(filter = {}) {
      return (await listInstances(sql, filter)).map((row) => viewOf(row));
    },

    counts: () => countByState(sql),

    async stats() {
      const read = await storeStats(sql);
      const at = now();
      const ageOf = (since: number) => Math.max(0, at - since);
      const empty = (): Record<WorkflowState, number> => ({ running: 0, waiting: 0, done: 0, failed: 0, compensated: 0 });
      const states = new Map<string, Record<WorkflowState, number>>([...definitions.keys()].map((type) => [type, empty()]));
      for (const { type, state, count } of read.instances) {
        const byState = states.get(type) ?? empty();
        byState[state] = count;
        states.set(type, byState);
      }
      const parkedSince = new Map(read.parked.map(({ type, oldestAt }) => [type, oldestAt]));
      const types: Record<string, WorkflowTypeStats> = {};
      for (const [type, byState] of states) {
        const since = parkedSince.get(type);
        types[type] = { states: byState, oldestParkedAgeMs: since === undefined ? null : ageOf(since) };
      }
      let oldestAgeMs: number | null = null;
      if (read.outbox.oldestEvent !== null) {
        try {
          const time = Date.parse((JSON.parse(read.outbox.oldestEvent) as { time?: string }).time ?? '');
          if (Number.isFinite(time)) oldestAgeMs = ageOf(time);
        } catch {
          // An event that is not JSON has no time to tell; the depth still counts it.
        }
      }
      return { types, outbox: { depth: read.outbox.depth, oldestAgeMs } };
    },

    runDue,

    startPolling() {
      if (poller || stopping) return;
      poller = setInterval(tick, pollMs);
      poller.unref();
      tick();
    },

    wake: tick,

    async act(id, action, operator, reason = null) {
      const row = await instanceById(sql, id);
      if (!row) throw new OperatorActionError(`No workflow ${id}`, 'NOT_FOUND');
      if (row.state !== 'failed')
        throw new OperatorActionError(`Workflow ${id} is ${row.state}, not parked: nothing to ${action}`, 'NOT_PARKED');
      const definition = definitions.get(row.type);
      const at = now();
      let update: Parameters<typeof updateInstance>[2];
      let detail: string;
      if (action === 'retry') {
        update = { state: 'running', attempts: 0, next_run_at: at, parked_reason: null };
        detail = `retry ${definition?.steps[row.step]?.name ?? `step ${row.step}`}`;
      } else if (action === 'skip') {
        const skipped = definition?.steps[row.step];
        if (!skipped) throw new OperatorActionError(`Workflow ${id} has no step to skip`, 'NOTHING_TO_SKIP');
        update = {
          state: 'running',
          step: row.phase === 'compensating' ? row.step - 1 : row.step + 1,
          attempts: 0,
          next_run_at: at,
          parked_reason: null,
        };
        detail = `skip ${skipped.name}`;
      } else {
        // Undo what was done; in the compensating phase already, the step that failed is tried again.
        update =
          row.phase === 'compensating'
            ? { state: 'running', attempts: 0, next_run_at: at, parked_reason: null }
            : { state: 'running', phase: 'compensating', step: row.step - 1, attempts: 0, next_run_at: at, parked_reason: null };
        detail = 'compensate';
      }
      const applied = await sql.transaction(async (tx) => {
        if (!(await updateInstance(tx, id, update, at, { states: ['failed'] }))) return false;
        if (action === 'skip' && definition?.steps[row.step])
          await upsertStep(tx, {
            instance_id: id,
            phase: row.phase,
            step: row.step,
            name: definition.steps[row.step]!.name,
            state: 'skipped',
            attempts: row.attempts,
            started_at: null,
            finished_at: at,
            last_error: row.last_error,
          });
        await history(tx, id, `operator: ${action}`, `${detail} (by ${operator})${reason ? `: ${reason}` : ''}`, row.correlation_id);
        return true;
      });
      if (!applied) throw new OperatorActionError(`Workflow ${id} changed meanwhile; look again`, 'NOT_PARKED');
      logger.warn(
        { event: 'workflow.operator', workflowId: id, action, operator, ...(reason ? { reason } : {}), audit: true },
        'operator acted on a workflow',
      );
      changed(id);
      if (poller) tick();
      return (await get(id))!;
    },

    async publishEvents() {
      await relay(true);
      // A round that was running when asked: the one it queued (relayAgain) has run by now.
      await relaying;
    },

    async stop(graceMs = 10_000) {
      stopping = true;
      if (poller) clearInterval(poller);
      poller = null;
      const inFlight = [...running.entries()];
      const finished = Promise.all(inFlight.map(([, run]) => run.done));
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([
        finished.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (late) for (const [, run] of running) run.abort.abort(new Error('stopping'));
      // Whatever is still ours is handed on at once, not when its lease runs out.
      await releaseLeases(
        sql,
        owner,
        inFlight.map(([id]) => id),
      ).catch(() => undefined);
      // What the steps recorded is published before the store closes.
      await relaying;
      await relay(true);
    },
  };
}
