import { defineConfig } from '@graphql-hive/gateway';

/**
 * Hive Gateway as a team would deploy it over the same supergraph: its defaults, with the one
 * addition any deployment needs to reach subgraphs that require a token, passing the client's
 * authorization header on to each subgraph. No registry token is given, so nothing is reported
 * to Hive.
 */
export const gatewayConfig = defineConfig({
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({ authorization: request.headers.get('authorization') }),
  },
});
