import { asyncSlot } from './async-context.ts';
import { ConnectorError } from './errors.ts';
import type { ApiBudget } from './metrics.ts';
import { currentScope } from './request-context.ts';

/**
 * A vendor account's API budget, kept per system in each process, and the order in which work
 * may spend it. Agents' and customers' queries are interactive: they always go. Background work
 * (workflow steps, change-feed polls, bulk reads) goes while more than the reserve of the
 * vendor's limit is left, and waits its turn below it, so that the last of the allocation is
 * spent on people waiting for an answer and the vendor never has to say 429 to them.
 *
 * What is left comes from the vendor's own answers (each adapter reads its quota headers into
 * `report`), counted down by one for each request sent in between. The vendor counts the
 * whole account, so replicas of a service sharing one account see each other's spending in
 * every answer: the reserve holds across them without their talking to each other.
 */

export type Priority = 'interactive' | 'background';

/** The header a caller lowers its requests' priority with; the gateway passes it on to the subgraphs. */
export const PRIORITY_HEADER = 'concord-priority';

const priority = asyncSlot<Priority>('concord.priority');

/** Runs `fn` (and every vendor call it makes) as background work. */
export function inBackground<T>(fn: () => T): T {
  return priority.run('background', fn);
}

/** The priority of the work being done: background inside `inBackground` or a request that asked for it. */
export function currentPriority(): Priority {
  return priority.get() ?? currentScope()?.priority ?? 'interactive';
}

/** A header's value as a priority: only `background` lowers it (no caller can raise its own). */
export function priorityFrom(header: string | string[] | undefined): Priority {
  const value = Array.isArray(header) ? header[0] : header;
  return value?.trim().toLowerCase() === 'background' ? 'background' : 'interactive';
}

export interface BudgetPolicy {
  /** The share of the vendor's limit kept for interactive work, 0 to 0.9. */
  readonly reserve: number;
  /** How long background work waits for the budget before it is shed, in ms. */
  readonly maxWaitMs: number;
  /** Background calls that may wait at once; more are shed at once. */
  readonly maxWaiting: number;
}

export const DEFAULT_BUDGET_POLICY: BudgetPolicy = { reserve: 0.2, maxWaitMs: 60_000, maxWaiting: 256 };

/** With no answer to learn from (no interactive traffic), one waiting call is let through this often to read the budget again. */
const PROBE_MS = 1_000;

export interface BudgetSnapshot {
  readonly limit: number | null;
  readonly remaining: number | null;
  /** Calls below which background work waits. */
  readonly floor: number | null;
  readonly waiting: number;
  /** Background calls given up on since the process started. */
  readonly shed: number;
}

export interface BudgetGate {
  /**
   * Lets the call go now, or (background work with the budget at its reserve) when the budget
   * allows, or throws when it has waited its limit or too many wait already.
   */
  admit(operation: string): Promise<void>;
  /**
   * One request sent: one call fewer left until the vendor says otherwise. Call what it returns
   * when the request ends, with what its answer said of the account's quota (a 429 included), or
   * null (no answer, or a vendor that reports none).
   */
  spend(): (reported: ApiBudget | null) => void;
  /** What the vendor said of the account's quota, outside a request (e.g. a limits call). */
  report(budget: ApiBudget): void;
  snapshot(): BudgetSnapshot;
}

export function createBudgetGate(
  system: string,
  policy: BudgetPolicy = DEFAULT_BUDGET_POLICY,
  options: { onShed?: () => void; onWait?: (ms: number) => void; now?: () => number } = {},
): BudgetGate {
  const now = options.now ?? Date.now;
  let limit: number | null = null;
  let remaining: number | null = null;
  let shed = 0;
  const waiting: { release: () => void; since: number }[] = [];
  let probe: ReturnType<typeof setTimeout> | null = null;

  /** Requests sent and not answered yet: the vendor may not have counted them in what it reports. */
  let inflight = 0;

  /**
   * An answer's count is the vendor's truth for the whole account (others' spending included),
   * but it may be older than requests still in flight: a lower count is taken at once, a higher
   * one (a new window) less what is still in flight.
   */
  function learn(budget: ApiBudget): void {
    const reported =
      budget.remaining !== undefined ? budget.remaining : budget.used !== undefined ? Math.max(0, budget.limit - budget.used) : null;
    limit = budget.limit;
    if (reported !== null)
      remaining = remaining === null ? reported - inflight : Math.max(Math.min(remaining, reported), reported - inflight);
    if (remaining !== null && remaining < 0) remaining = 0;
    drain();
  }

  const floor = () => (limit === null ? null : Math.ceil(limit * policy.reserve));
  const open = () => remaining === null || limit === null || remaining > floor()!;

  /** Releases as many waiting calls as the budget now allows, oldest first. */
  function drain(): void {
    while (waiting.length > 0 && open()) {
      const next = waiting.shift()!;
      if (remaining !== null) remaining -= 1;
      next.release();
    }
    schedule();
  }

  /** While calls wait and nothing is heard, one goes as a probe now and then: its answer reports the budget again. */
  function schedule(): void {
    if (waiting.length === 0) {
      if (probe) clearTimeout(probe);
      probe = null;
      return;
    }
    probe ??= setTimeout(() => {
      probe = null;
      waiting.shift()?.release();
      schedule();
    }, PROBE_MS);
    probe.unref?.();
  }

  return {
    async admit(operation) {
      if (currentPriority() === 'interactive') return;
      if (open()) {
        // Claimed now, before the request is sent: many background calls admitted at once must
        // not all see the same count. The estimate errs low until the next answer corrects it.
        if (remaining !== null) remaining -= 1;
        return;
      }
      if (waiting.length >= policy.maxWaiting) {
        shed += 1;
        options.onShed?.();
        throw new ConnectorError(
          system,
          `${operation}: background work is held back, the ${system}'s API budget is at its reserve for interactive work (${waiting.length} calls already waiting)`,
        );
      }
      const since = now();
      await new Promise<void>((resolve, reject) => {
        const entry = {
          since,
          release: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          const index = waiting.indexOf(entry);
          if (index >= 0) waiting.splice(index, 1);
          shed += 1;
          options.onShed?.();
          reject(
            new ConnectorError(
              system,
              `${operation}: background work waited ${Math.round(policy.maxWaitMs / 1000)} s for the ${system}'s API budget, kept for interactive work, and was given up`,
            ),
          );
        }, policy.maxWaitMs);
        timer.unref?.();
        waiting.push(entry);
        schedule();
      });
      options.onWait?.(now() - since);
    },
    spend() {
      if (remaining !== null) remaining = Math.max(0, remaining - 1);
      inflight += 1;
      let ended = false;
      return (reported) => {
        if (ended) return;
        ended = true;
        inflight -= 1;
        if (reported) learn(reported);
      };
    },
    report: learn,
    snapshot: () => ({ limit, remaining, floor: floor(), waiting: waiting.length, shed }),
  };
}
