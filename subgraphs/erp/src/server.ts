import { fromPackageRoot } from '../../../platform/package-root.ts';
import type { ApolloServer } from '@apollo/server';
import type { Logger } from '../../../platform/logger.ts';
import { createSubgraphServer, readSdl } from '../../../platform/subgraph.ts';
import type { Context } from './context.ts';
import { ERP_OWNERS, ERP_POLICY, ERP_SENSITIVE } from './policy.ts';
import { resolvers } from './resolvers/index.ts';

export const ERP_SDL = readSdl(fromPackageRoot('subgraphs/erp/schema.graphql'));

/** The ERP subgraph's Apollo Server (not listening); tests call executeOperation on it. */
export function createServer(deps: { logger: Logger; enforce?: boolean }): ApolloServer<Context> {
  return createSubgraphServer<Context>({
    sdl: ERP_SDL,
    resolvers,
    logger: deps.logger,
    enforce: deps.enforce ?? true,
    authorization: { policy: ERP_POLICY, owners: ERP_OWNERS, sensitive: ERP_SENSITIVE },
  });
}
