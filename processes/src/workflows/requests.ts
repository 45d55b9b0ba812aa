import { GraphQLError } from 'graphql';
import type { Identity } from '../../../platform/identity.ts';
import { auditLogger, type Logger } from '../../../platform/logger.ts';
import { WorkflowKeyReusedError, type WorkflowEngine, type WorkflowInstance } from '../../../platform/workflow/engine.ts';

/** A caller's idempotency key, scoped to the caller: another caller's same key is another request. */
export const scopedKey = (identity: Identity, key: string) => JSON.stringify([identity.subject, key]);

/**
 * The instance a caller's key started, or a new one: `prepare` (reads the facts the workflow
 * starts from) runs only for a key not seen before. `reused` when the key was used before for
 * another request.
 */
export async function startOnce<I>(
  engine: WorkflowEngine,
  type: string,
  options: { key: string; fingerprint: unknown; correlationId: string },
  prepare: () => Promise<{ input: I; sequenceKey?: string | null }>,
): Promise<{ kind: 'reused' } | { kind: 'started' | 'replayed'; instance: WorkflowInstance<I> }> {
  const known = async () => {
    const found = await engine.find<I>(type, options.key);
    if (!found) return null;
    return engine.sameRequest(found, options.fingerprint)
      ? ({ kind: 'replayed', instance: found } as const)
      : ({ kind: 'reused' } as const);
  };
  const before = await known();
  if (before) return before;
  let prepared: { input: I; sequenceKey?: string | null };
  try {
    prepared = await prepare();
  } catch (error) {
    // A concurrent sending of this request started the workflow meanwhile (and the facts it
    // changed now refuse a new one): this sending is that request too.
    const meanwhile = await known();
    if (meanwhile) return meanwhile;
    throw error;
  }
  const { input, sequenceKey } = prepared;
  try {
    const started = await engine.start<I>(type, input, {
      idempotencyKey: options.key,
      correlationId: options.correlationId,
      fingerprint: options.fingerprint,
      sequenceKey: sequenceKey ?? null,
    });
    return { kind: started.created ? 'started' : 'replayed', instance: started.instance };
  } catch (error) {
    if (error instanceof WorkflowKeyReusedError) return { kind: 'reused' };
    throw error;
  }
}

/**
 * Waits (at most `waitMs`, less than the gateway's deadline) for the output of the step the
 * caller's answer needs. Still trying then: IDEMPOTENCY_KEY_IN_PROGRESS with when to send the
 * request again and the workflow's id; parked: WORKFLOW_PARKED, for an operator.
 */
export async function outputOf<O>(
  engine: WorkflowEngine,
  instance: WorkflowInstance,
  step: string,
  /** When the caller's request arrived: the wait ends `waitMs` after it, whatever came before. */
  since: number,
  waitMs: number,
  what: string,
): Promise<{ instance: WorkflowInstance; output: O }> {
  const decided = (current: WorkflowInstance) =>
    step in current.results || current.state === 'failed' || current.state === 'done' || current.state === 'compensated';
  const current = (await engine.waitFor(instance.id, decided, Math.max(0, since + waitMs - Date.now()))) ?? instance;
  if (step in current.results) return { instance: current, output: current.results[step] as O };
  if (current.state === 'failed') throw parked(what, current);
  // Held back behind an earlier workflow of its sequence that waits for an operator: say so.
  if (current.sequenceKey) {
    const earlier = (await engine.list({ sequenceKey: current.sequenceKey, state: 'failed', limit: 10 })).find(
      (other) => other.seq < current.seq,
    );
    if (earlier) throw parked(what, earlier);
  }
  const retryAfterMs = Math.min(30_000, Math.max(250, current.nextRunAt - Date.now()));
  throw new GraphQLError(
    `${what} is still in progress (workflow ${current.id}${current.lastError ? `; last attempt: ${current.lastError}` : ''}); ` +
      `send the same request again in ${retryAfterMs} ms for its result`,
    { extensions: { code: 'IDEMPOTENCY_KEY_IN_PROGRESS', retryAfterMs, workflowId: current.id } },
  );
}

function parked(what: string, instance: WorkflowInstance): GraphQLError {
  return new GraphQLError(`${what} could not be done and waits for an operator (workflow ${instance.id}): ${instance.parkedReason ?? ''}`, {
    extensions: { code: 'WORKFLOW_PARKED', workflowId: instance.id },
  });
}

/** The audit line of every request, whatever LOG_LEVEL says: who asked what, and how it ended. */
export function requestAudit(
  logger: Logger,
  event: string,
  identity: Identity,
  correlationId: string,
  about: Record<string, unknown>,
): (outcome: string, extra?: Record<string, unknown>) => void {
  const auditLog = auditLogger(logger);
  return (outcome, extra = {}) =>
    auditLog.info(
      { audit: true, event, who: identity.subject, roles: identity.roles, ...about, outcome, correlationId, ...extra },
      'audit',
    );
}

/** outputOf, with the audit line of a request that could not be answered yet (parked or pending). */
export async function auditedOutputOf<O>(
  audit: (outcome: string, extra?: Record<string, unknown>) => void,
  ...args: Parameters<typeof outputOf>
): Promise<{ instance: WorkflowInstance; output: O }> {
  try {
    return await outputOf<O>(...args);
  } catch (error) {
    const code = error instanceof GraphQLError ? error.extensions.code : null;
    audit(code === 'WORKFLOW_PARKED' ? 'parked' : 'pending', { workflowId: args[1].id });
    throw error;
  }
}
