import type { Logger } from '../../../platform/logger.ts';
import type { RequestScope } from '../../../platform/request-context.ts';
import { isoDate, type Clock } from '../../../platform/time.ts';
import type { CrmConnector } from './connectors/types.ts';
import { createLoaders, type Loaders } from './loaders.ts';

/** What every CRM resolver gets: one instance per request. */
export interface Context {
  readonly correlationId: string;
  readonly logger: Logger;
  readonly loaders: Loaders;
  /** Today's date (YYYY-MM-DD), fixed for the whole request. */
  readonly today: string;
}

export function createContextFactory(deps: { connector: CrmConnector; logger: Logger; clock: Clock }) {
  return async (_req: unknown, scope: RequestScope): Promise<Context> => ({
    correlationId: scope.correlationId,
    logger: deps.logger,
    loaders: createLoaders(deps.connector),
    today: isoDate(deps.clock()),
  });
}
