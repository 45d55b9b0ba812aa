import { ErrorCode } from '../../../platform/errors.ts';
import type { GraphQLReply } from '../../../platform/service-client.ts';
import { PermanentStepError } from '../../../platform/workflow/engine.ts';

/** Codes of a reply no attempt will change: the request, or the service's identity, is refused. */
const REFUSALS = new Set<unknown>([ErrorCode.BadUserInput, ErrorCode.Forbidden, ErrorCode.Unauthenticated, ErrorCode.RefusedBySystem]);

/**
 * The data of a step's call to the graph. A reply with errors is a failed attempt (retried); a
 * refusal (bad input, an identity not allowed, a system's own rule) will never pass: it fails
 * the step for good, so the steps done before are compensated, or the workflow parked at once.
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
