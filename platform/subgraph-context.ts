import { AuditTrail, type AuthorizedContext } from './authorization.ts';
import type { Identity } from './identity.ts';
import type { Logger } from './logger.ts';
import type { RequestScope } from './request-context.ts';
import { isoDate, type Clock } from './time.ts';

/** What every subgraph's context holds beside its loaders: one instance per request. */
export interface BaseContext extends AuthorizedContext {
  readonly correlationId: string;
  readonly logger: Logger;
  /** Verified from the gateway's internal token before anything executes. */
  readonly identity: Identity;
  /** Today's date (YYYY-MM-DD), fixed for the whole request. */
  readonly today: string;
}

export function baseContext(deps: { logger: Logger; clock: Clock }, scope: RequestScope, identity: Identity): BaseContext {
  return {
    correlationId: scope.correlationId,
    logger: deps.logger,
    identity,
    audit: new AuditTrail(identity, scope.correlationId),
    today: isoDate(deps.clock()),
  };
}
