import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import type { Logger } from './logger.ts';
import { currentScope } from './request-context.ts';

/** The error codes Concord's services put in `extensions.code`. */
export enum ErrorCode {
  BadUserInput = 'BAD_USER_INPUT',
  Unauthenticated = 'UNAUTHENTICATED',
  Forbidden = 'FORBIDDEN',
  /** The system behind a subgraph (or the subgraph itself) did not answer. */
  SystemUnavailable = 'SYSTEM_UNAVAILABLE',
  /** A system's answer was larger than the gateway reads (SUBGRAPH_MAX_RESPONSE_MB): ask for less. */
  ResponseTooLarge = 'RESPONSE_TOO_LARGE',
  InternalServerError = 'INTERNAL_SERVER_ERROR',
  /** A system refused a write by its own rules (a validation rule, a locked record): sending it again changes nothing. */
  RefusedBySystem = 'REFUSED_BY_SYSTEM',
}

/** A bad argument: the message names it and says what is accepted. */
export function badUserInput(argument: string, message: string): GraphQLError {
  return new GraphQLError(`Argument "${argument}" ${message}`, {
    extensions: { code: ErrorCode.BadUserInput, argumentName: argument },
  });
}

/** A write the system refused by its own rules, naming the system and its reason. */
export function refusedBySystem(system: string, reason: string, message: string): GraphQLError {
  return new GraphQLError(`The ${system} refused the change (${reason}): ${message}`, {
    extensions: { code: ErrorCode.RefusedBySystem, system, reason },
  });
}

/**
 * Raised by an adapter when its system fails (unreachable, timed out, answered an error). The
 * detail goes to the log; the client learns only which system failed.
 */
export class ConnectorError extends Error {
  override name = 'ConnectorError';
  constructor(
    readonly system: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Codes of errors a client can act on; any other error is masked before it leaves a service. */
export const CLIENT_ERROR_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.BadUserInput,
  ErrorCode.Unauthenticated,
  ErrorCode.Forbidden,
  ErrorCode.SystemUnavailable,
  ErrorCode.ResponseTooLarge,
  ErrorCode.RefusedBySystem,
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
  'OPERATION_TOO_COSTLY',
  'IDEMPOTENCY_KEY_IN_PROGRESS',
  'WORKFLOW_PARKED',
  'BAD_REQUEST',
]);

/**
 * Apollo Server's `formatError` for a subgraph: errors a client can act on pass through; a
 * system's failure becomes SYSTEM_UNAVAILABLE naming the system; anything else is logged in full
 * and reaches the client only as an internal error with the correlation id to quote.
 */
export function subgraphErrorFormatter(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    const code = formatted.extensions?.code;
    if (original instanceof ConnectorError) {
      logger.warn({ err: original, path: formatted.path }, `${original.system} call failed`);
      return {
        message: `The ${original.system} system did not answer`,
        ...(formatted.path ? { path: formatted.path } : {}),
        extensions: { code: ErrorCode.SystemUnavailable, system: original.system },
      };
    }
    if (typeof code === 'string' && CLIENT_ERROR_CODES.has(code)) {
      const { stacktrace: _stack, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions };
    }
    logger.error({ err: original, path: formatted.path }, 'unexpected error');
    const correlationId = currentScope()?.correlationId;
    return {
      message: `Internal error${correlationId ? ` (correlation id ${correlationId})` : ''}`,
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: { code: ErrorCode.InternalServerError },
    };
  };
}
