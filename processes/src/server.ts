import type { ApolloServer } from '@apollo/server';
import type { Logger } from '../../platform/logger.ts';
import { fromPackageRoot } from '../../platform/package-root.ts';
import { createSubgraphServer, readSdl } from '../../platform/subgraph.ts';
import type { Context } from './context.ts';
import { PROCESSES_OWNERS, PROCESSES_POLICY } from './policy.ts';
import { resolvers } from './resolvers/index.ts';

export const PROCESSES_SDL = readSdl(fromPackageRoot('processes/schema.graphql'));

/** The process service's Apollo Server (not listening); tests call executeOperation on it. */
export function createServer(deps: { logger: Logger; enforce?: boolean }): ApolloServer<Context> {
  return createSubgraphServer<Context>({
    sdl: PROCESSES_SDL,
    resolvers,
    logger: deps.logger,
    enforce: deps.enforce ?? true,
    authorization: { policy: PROCESSES_POLICY, owners: PROCESSES_OWNERS },
  });
}
