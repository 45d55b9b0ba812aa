import type { Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { RequestScope } from '../../../platform/request-context.ts';
import { baseContext, type BaseContext } from '../../../platform/subgraph-context.ts';
import type { Clock } from '../../../platform/time.ts';
import type { CrmConnector } from './connectors/types.ts';
import { createLoaders, type Loaders } from './loaders.ts';

/** What every crm resolver gets: one instance per request. */
export interface Context extends BaseContext {
  readonly loaders: Loaders;
  /** For writes, which no loader batches. */
  readonly crm: CrmConnector;
}

export function createContextFactory(deps: { connector: CrmConnector; logger: Logger; clock: Clock }) {
  return async (_req: unknown, scope: RequestScope, identity: Identity): Promise<Context> => ({
    ...baseContext(deps, scope, identity),
    loaders: createLoaders(deps.connector),
    crm: deps.connector,
  });
}
