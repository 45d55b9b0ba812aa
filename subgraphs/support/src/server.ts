import { fromPackageRoot } from '../../../platform/package-root.ts';
import type { ApolloServer } from '@apollo/server';
import type { Logger } from '../../../platform/logger.ts';
import { createSubgraphServer, readSdl } from '../../../platform/subgraph.ts';
import type { Context } from './context.ts';
import { SUPPORT_OWNERS, SUPPORT_POLICY } from './policy.ts';
import { resolvers } from './resolvers/index.ts';

export const SUPPORT_SDL = readSdl(fromPackageRoot('subgraphs/support/schema.graphql'));

/** The support subgraph's Apollo Server (not listening); tests call executeOperation on it. */
export function createServer(deps: { logger: Logger; enforce?: boolean }): ApolloServer<Context> {
  return createSubgraphServer<Context>({
    sdl: SUPPORT_SDL,
    resolvers,
    logger: deps.logger,
    enforce: deps.enforce ?? true,
    authorization: { policy: SUPPORT_POLICY, owners: SUPPORT_OWNERS },
  });
}
