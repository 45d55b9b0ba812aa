import type { Logger } from '../../../platform/logger.ts';
import type { RequestScope } from '../../../platform/request-context.ts';
import { isoDate, type Clock } from '../../../platform/time.ts';
import type { SupportConnector } from './connectors/types.ts';
import { createLoaders, type Loaders } from './loaders.ts';

/** What every support resolver gets: one instance per request. */
export interface Context {
  readonly correlationId: string;
  readonly logger: Logger;
  readonly loaders: Loaders;
  /** For calls that no loader batches (one page of a search, a count). */
  readonly desk: SupportConnector;
  /** Today's date (YYYY-MM-DD), fixed for the whole request. */
  readonly today: string;
}

export function createContextFactory(deps: { connector: SupportConnector; logger: Logger; clock: Clock }) {
  return async (_req: unknown, scope: RequestScope): Promise<Context> => ({
    correlationId: scope.correlationId,
    logger: deps.logger,
    loaders: createLoaders(deps.connector),
    desk: deps.connector,
    today: isoDate(deps.clock()),
  });
}
