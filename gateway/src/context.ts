import type { IncomingMessage } from 'node:http';
import type { Identity } from '../../platform/identity.ts';
import { auditLogger, type Logger } from '../../platform/logger.ts';
import type { RequestScope } from '../../platform/request-context.ts';
import type { ClientVerifier } from './auth.ts';
import { AnswerLifetime } from './cache/response-cache.ts';

/** What the gateway keeps per request and hands to each subgraph call. */
export interface GatewayContext {
  readonly correlationId: string;
  /** Verified from the client's bearer token before anything executes. */
  readonly identity: Identity;
  /** How long this request's answer may be served again (cache/response-cache.ts). */
  readonly answerLifetime: AnswerLifetime;
  /** A live subscription's message being resolved (live/hub.ts), not a client's request. */
  readonly live?: true;
}

/** Builds each request's context; an unverifiable token fails the request here, with 401. */
export function createGatewayContextFactory(verify: ClientVerifier, logger?: Logger, screen?: (body: unknown, identity: Identity) => void) {
  return async (req: IncomingMessage, scope: RequestScope, body?: unknown): Promise<GatewayContext> => {
    let identity: Identity;
    try {
      identity = await verify(req.headers.authorization);
    } catch (error) {
      // A refused token is an audit event too: who tried, from where, and why (never the token).
      if (logger) {
        auditLogger(logger).info(
          {
            audit: true,
            event: 'authentication_refused',
            reason: error instanceof Error ? error.message : String(error),
            remoteAddress: req.socket.remoteAddress,
            correlationId: scope.correlationId,
          },
          'audit',
        );
      }
      throw error;
    }
    // Client mistakes refused before parsing and validation, with their 4xx (request-guard.ts).
    screen?.(body, identity);
    return { correlationId: scope.correlationId, identity, answerLifetime: new AnswerLifetime() };
  };
}
