import { createBudgetGate, DEFAULT_BUDGET_POLICY, type BudgetGate } from './api-budget.ts';
import { ConnectorError } from './errors.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { inSystemCall } from './tracing.ts';

/**
 * How one system is called: a deadline on every call, retries with capped exponential backoff
 * and full jitter (for reads and idempotent writes only) that honour Retry-After, a circuit
 * breaker that fails fast while the system is down so the graph answers the other systems at
 * once, and a bulkhead that keeps concurrent calls below the vendor's limit.
 */
export interface ResiliencePolicy {
  timeoutMs: number;
  /** Tries after the first, for idempotent calls. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Calls in flight at once; more wait their turn. */
  maxConcurrent: number;
  /** Consecutive failures that open the breaker, and how long it stays open. */
  breakerThreshold: number;
  breakerOpenMs: number;
  /** The share of the vendor's API limit kept for interactive work (platform/api-budget.ts); 0.2 when not given. */
  apiReserve?: number;
  /** How long background work waits for the API budget before it is given up, in ms; 60 s when not given. */
  backgroundWaitMs?: number;
}

/** A system that asks us to come back later than this is given up on for this call: nobody waits that long. */
const MAX_RETRY_AFTER_MS = 30_000;
/** Calls that may wait for a bulkhead slot, per slot. */
const QUEUE_PER_SLOT = 4;

export const DEFAULT_POLICY: ResiliencePolicy = {
  timeoutMs: 10_000,
  retries: 3,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxConcurrent: 16,
  breakerThreshold: 5,
  breakerOpenMs: 30_000,
};

/**
 * What an adapter throws for a failed call it has classified: `retryable` for timeouts,
 * connection failures, 429 and 5xx; `retryAfterMs` when the system said when to come back.
 */
export class SystemCallError extends Error {
  override name = 'SystemCallError';
  constructor(
    message: string,
    readonly details: { retryable: boolean; retryAfterMs?: number | undefined; status?: number | undefined },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CallOptions {
  /** Safe to send again: reads, and writes the system deduplicates (an idempotency key). */
  idempotent: boolean;
}

export interface Resilience {
  readonly system: string;
  /** Runs one call to the system; `signal` aborts it at the deadline. */
  call<T>(operation: string, options: CallOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** open: failing fast; closed: calling normally (half-open lets one call through to test). */
  state(): 'closed' | 'open' | 'half-open';
  /** The vendor account's API budget: the adapter's pipeline reports each answer's quota into it. */
  readonly budget: BudgetGate;
}

export function createResilience(
  system: string,
  policy: ResiliencePolicy,
  options: {
    logger?: Logger;
    /** Where retries are counted and the breaker's state is exported. */
    metrics?: Metrics;
    now?: () => number;
    sleep?: (ms: number) => Promise<void>;
    random?: () => number;
  } = {},
): Resilience {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  let failures = 0;
  let openUntil = 0;
  let probing = false;
  let active = 0;
  const waiting: (() => void)[] = [];

  const state = (): 'closed' | 'open' | 'half-open' => (openUntil === 0 ? 'closed' : now() < openUntil ? 'open' : 'half-open');
  options.metrics?.breakers.set(system, state);
  const metrics = options.metrics;
  const budget = createBudgetGate(
    system,
    {
      ...DEFAULT_BUDGET_POLICY,
      reserve: policy.apiReserve ?? DEFAULT_BUDGET_POLICY.reserve,
      maxWaitMs: policy.backgroundWaitMs ?? DEFAULT_BUDGET_POLICY.maxWaitMs,
    },
    { onShed: () => metrics?.budgetShed.inc({ system }), now },
  );
  metrics?.budgets.set(system, budget.snapshot);

  async function acquire(operation: string): Promise<void> {
    if (active < policy.maxConcurrent) {
      active += 1;
      return;
    }
    // Past a few calls' worth of waiting, more would only wait out their clients' deadlines.
    if (waiting.length >= policy.maxConcurrent * QUEUE_PER_SLOT) {
      throw new ConnectorError(system, `${operation}: ${waiting.length} calls to the ${system} are already waiting`);
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  function release(): void {
    const next = waiting.shift();
    if (next) next();
    else active -= 1;
  }

  function recordSuccess(): void {
    failures = 0;
    openUntil = 0;
    probing = false;
  }
  /** An answer that is not a failure of the system (a 4xx): the system is up; a probe has passed. */
  function recordAnswered(): void {
    failures = 0;
    openUntil = 0;
    probing = false;
  }
  function recordFailure(operation: string): void {
    failures += 1;
    probing = false;
    if (failures >= policy.breakerThreshold && state() !== 'open') {
      openUntil = now() + policy.breakerOpenMs;
      options.logger?.warn({ system, operation, failures, openMs: policy.breakerOpenMs }, 'circuit breaker opened');
    }
  }

  async function attempt<T>(operation: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    await acquire(operation);
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new SystemCallError(`timed out after ${policy.timeoutMs} ms`, { retryable: true })),
      policy.timeoutMs,
    );
    try {
      return await Promise.race([
        fn(controller.signal),
        new Promise<never>((_, reject) =>
          controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), { once: true }),
        ),
      ]);
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  return {
    system,
    state,
    budget,
    call(operation, callOptions, fn) {
      return inSystemCall(system, operation, async (record) => {
        // Outside the bulkhead and the deadline: background work waiting for the budget holds no slot.
        await budget.admit(operation);
        return guarded(operation, callOptions, fn, record);
      });
    },
  };

  /** One call: refused while the breaker is open, else tried (and retried) within the policy. */
  async function guarded<T>(
    operation: string,
    callOptions: CallOptions,
    fn: (signal: AbortSignal) => Promise<T>,
    record: (attributes: Record<string, string | number>) => void,
  ): Promise<T> {
    const current = state();
    record({ 'concord.breaker.state': current });
    if (current === 'open' || (current === 'half-open' && probing)) {
      throw new ConnectorError(system, `${operation}: the ${system} circuit is open after repeated failures`);
    }
    if (current === 'half-open') probing = true;
    const tries = callOptions.idempotent ? policy.retries + 1 : 1;
    for (let tryNumber = 1; ; tryNumber += 1) {
      record({ 'concord.retries': tryNumber - 1 });
      try {
        const result = await attempt(operation, fn);
        recordSuccess();
        return result;
      } catch (error) {
        const classified = error instanceof SystemCallError ? error : null;
        const refused = !classified?.details.retryable && (classified?.details.status === 401 || classified?.details.status === 403);
        if (classified && !classified.details.retryable && !refused) {
          // The system answered: it is up, and the request was the caller's to fix.
          recordAnswered();
          throw classified;
        }
        recordFailure(operation);
        if (refused) {
          // A refused credential is an outage no client can fix: report it as one, naming the system.
          throw new ConnectorError(system, `${operation}: the ${system} refused Concord's credentials (${classified.details.status})`, {
            cause: error,
          });
        }
        const retryAfter = classified?.details.retryAfterMs ?? 0;
        const retry = classified?.details.retryable && tryNumber < tries && state() !== 'open' && retryAfter <= MAX_RETRY_AFTER_MS;
        if (!retry) {
          if (error instanceof ConnectorError) throw error;
          const why = retryAfter > MAX_RETRY_AFTER_MS ? ` (the ${system} asks to wait ${Math.ceil(retryAfter / 1000)} s)` : '';
          throw new ConnectorError(system, `${operation}: ${(error as Error).message}${why}`, { cause: error });
        }
        const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (tryNumber - 1));
        const delay = Math.max(retryAfter, Math.floor(random() * ceiling));
        options.logger?.warn({ system, operation, try: tryNumber, delayMs: delay, error: classified!.message }, 'retrying a failed call');
        options.metrics?.connectorRetries.inc({ system, operation });
        await sleep(delay);
      }
    }
  }
}

/**
 * Whether a vendor adapter's failure means the system is unavailable to us (reported to clients
 * as SYSTEM_UNAVAILABLE naming it): what exhausted its retries or hit an open circuit, and a
 * refused credential (401/403), which no client can fix. Anything else is a bug, masked.
 */
export function isVendorOutage(error: unknown): boolean {
  if (error instanceof ConnectorError) return true;
  if (!(error instanceof SystemCallError)) return false;
  return error.details.retryable || error.details.status === 401 || error.details.status === 403;
}
