import { defineConfig } from '@graphql-hive/gateway';
import { unifiedGraphHandler } from '@graphql-hive/router-runtime';

/**
 * Hive Gateway with the Rust query planner: the Hive Router runtime
 * (@graphql-hive/router-runtime), plugged in as its documentation says, through the
 * configuration's `unifiedGraphHandler` (equivalent to `--hive-router-runtime`, which falls back
 * to the default runtime when the package does not load; this file fails instead). Otherwise
 * the same as hive-gateway.config.ts: defaults, plus passing the client's authorization header
 * on to each subgraph.
 */
export const gatewayConfig = defineConfig({
  unifiedGraphHandler,
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({ authorization: request.headers.get('authorization') }),
  },
});
