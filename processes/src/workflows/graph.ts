import { badUserInput, ConnectorError, ErrorCode } from '../../../platform/errors.ts';
import type { GraphQLReply, ServiceClient } from '../../../platform/service-client.ts';
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

/**
 * A read a request makes before its workflow starts (the case, the opportunity, the account, the
 * subscription): a key the system calls malformed is the caller's BAD_USER_INPUT naming
 * `argument`; any other error names the system that failed (SYSTEM_UNAVAILABLE), nothing started.
 */
export async function readBeforeStart<T>(
  graph: ServiceClient,
  read: { query: string; id: string; correlationId: string; argument: string; system: string; what: string },
): Promise<T | null | undefined> {
  const reply = await graph.request<T>(read.query, { id: read.id }, read.correlationId);
  const refusal = reply.errors?.find((error) => error.extensions?.code === ErrorCode.BadUserInput);
  if (refusal) throw badUserInput(read.argument, refusal.message.replace(/^Argument "id" /, ''));
  if (reply.errors?.length)
    throw new ConnectorError(
      read.system,
      `reading ${read.what} ${read.id} failed: ${reply.errors.map((error) => error.message).join('; ')}`,
    );
  return reply.data;
}
