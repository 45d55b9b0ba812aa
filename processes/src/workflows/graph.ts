import { ErrorCode } from '../../../platform/errors.ts';
import type { GraphQLReply } from '../../../platform/service-client.ts';
import { PermanentStepError } from '../../../platform/workflow/engine.ts';

/**
 * Codes of a reply no attempt will change: the request is refused (bad input, a system's own
 * rule). An identity refused (FORBIDDEN, UNAUTHENTICATED) is a configuration to fix, not a
 * business answer: retried, then parked, so it never undoes work that was done.
 */
const REFUSALS = new Set<unknown>([ErrorCode.BadUserInput, ErrorCode.RefusedBySystem]);

/**
 * The data of a step's call to the graph. A reply with errors is a failed attempt (retried); a
 * refusal will never pass: it fails the step for good, so the steps done before are
 * compensated, or (onRefusal: 'park') the workflow is parked at once.
 */
export function dataOf<T>(reply: GraphQLReply<T>, what: string): T {
  const errors = reply.errors ?? [];
  const refusal = errors.find((error) => REFUSALS.has(error.extensions?.code));
  if (refusal)
    throw new PermanentStepError(`${what}: ${String(refusal.extensions?.code)} ${refusal.message}`, String(refusal.extensions?.code));
  if (errors.length || !reply.data)
    throw new Error(`${what}: ${errors.map((error) => `${error.extensions?.code ?? 'ERROR'} ${error.message}`).join('; ') || 'no data'}`);
  return reply.data;
}
