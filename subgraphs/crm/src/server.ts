import { fromPackageRoot } from '../../../platform/package-root.ts';
import type { ApolloServer } from '@apollo/server';
import type { Logger } from '../../../platform/logger.ts';
import { createSubgraphServer, readSdl } from '../../../platform/subgraph.ts';
import type { Context } from './context.ts';
import { CRM_OWNERS, CRM_POLICY, CRM_SENSITIVE } from './policy.ts';
import { resolvers } from './resolvers/index.ts';

export const CRM_SDL = readSdl(fromPackageRoot('subgraphs/crm/schema.graphql'));

/** The CRM subgraph's Apollo Server (not listening); tests call executeOperation on it. */
export function createServer(deps: { logger: Logger; enforce?: boolean }): ApolloServer<Context> {
  return createSubgraphServer<Context>({
    sdl: CRM_SDL,
    resolvers,
    logger: deps.logger,
    enforce: deps.enforce ?? true,
    authorization: { policy: CRM_POLICY, owners: CRM_OWNERS, sensitive: CRM_SENSITIVE },
  });
}
