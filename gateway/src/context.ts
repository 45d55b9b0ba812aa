import type { IncomingMessage } from 'node:http';
import type { Identity } from '../../platform/identity.ts';
import type { RequestScope } from '../../platform/request-context.ts';
import type { ClientVerifier } from './auth.ts';

/** What the gateway keeps per request and hands to each subgraph call. */
export interface GatewayContext {
  readonly correlationId: string;
  /** Verified from the client's bearer token before anything executes. */
  readonly identity: Identity;
  /** Internal tokens signed for this request, one per subgraph. */
  readonly internalTokens: Map<string, Promise<string>>;
}

/** Builds each request's context; an unverifiable token fails the request here, with 401. */
export function createGatewayContextFactory(verify: ClientVerifier) {
  return async (req: IncomingMessage, scope: RequestScope): Promise<GatewayContext> => ({
    correlationId: scope.correlationId,
    identity: await verify(req.headers.authorization),
    internalTokens: new Map(),
  });
}
