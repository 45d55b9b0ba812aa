import { readFileSync } from 'node:fs';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

/**
 * The peer a team would deploy instead: @apollo/gateway with its default settings under Apollo
 * Server's standalone HTTP server, over the same supergraph. Its one addition is the minimum any
 * deployment needs to reach subgraphs that require a token: it passes the client's
 * authorization header on to each subgraph.
 */
const supergraphSdl = readFileSync(process.env.SUPERGRAPH ?? 'schema/supergraph.graphql', 'utf8');
const port = Number(process.env.PORT ?? 4100);

interface Context {
  authorization?: string;
}

const gateway = new ApolloGateway({
  supergraphSdl,
  buildService: ({ url }) =>
    new RemoteGraphQLDataSource<Context>({
      url,
      willSendRequest({ request, context }) {
        if (context.authorization) request.http?.headers.set('authorization', context.authorization);
      },
    }),
});
const server = new ApolloServer<Context>({ gateway });
const { url } = await startStandaloneServer(server, {
  listen: { port, host: '127.0.0.1' },
  context: async ({ req }) => ({ authorization: req.headers.authorization }),
});
console.log(`apollo-gateway ready at ${url}`);
