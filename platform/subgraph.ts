import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ApolloServer, type BaseContext } from '@apollo/server';
import { buildSubgraphSchema, type GraphQLResolverMap } from '@apollo/subgraph';
import { parse } from 'graphql';
import { subgraphErrorFormatter } from './errors.ts';
import { startService, type RunningService } from './http-server.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { RequestScope } from './request-context.ts';

/** Reads a subgraph's SDL from a file next to its code (a URL from `import.meta.url`). */
export function readSdl(url: URL): string {
  return readFileSync(url, 'utf8');
}

/**
 * An Apollo Server for a subgraph's SDL and resolvers, with errors masked for clients (see
 * subgraphErrorFormatter). Subgraphs sit behind the gateway, so introspection stays on for
 * composition checks.
 */
export function createSubgraphServer<TContext extends BaseContext>(options: {
  sdl: string;
  resolvers: unknown;
  logger: Logger;
}): ApolloServer<TContext> {
  return new ApolloServer<TContext>({
    schema: buildSubgraphSchema([{ typeDefs: parse(options.sdl), resolvers: options.resolvers as GraphQLResolverMap<unknown> }]),
    formatError: subgraphErrorFormatter(options.logger),
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    logger: options.logger,
  });
}

/** A system adapter as a service sees it: can be asked whether it answers, and closed. */
export interface Closable {
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Serves a subgraph over HTTP; ready while its connector answers; stop() also closes the connector. */
export async function serveSubgraph<TContext extends BaseContext>(options: {
  name: string;
  host: string;
  port: number;
  apollo: ApolloServer<TContext>;
  connector: Closable;
  context: (req: IncomingMessage, scope: RequestScope) => Promise<TContext>;
  logger: Logger;
  metrics: Metrics;
}): Promise<RunningService> {
  const service = await startService({
    name: options.name,
    host: options.host,
    port: options.port,
    apollo: options.apollo,
    context: options.context,
    logger: options.logger,
    metrics: options.metrics,
    ready: () => options.connector.ping().then(() => true),
  });
  return {
    ...service,
    async stop() {
      await service.stop();
      await options.connector.close();
    },
  };
}
