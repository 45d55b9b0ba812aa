import type { ApolloServer, ApolloServerPlugin, BaseContext as ApolloBaseContext } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { AuditTrail, type AuthorizedContext } from './authorization.ts';
import type { Identity } from './identity.ts';
import type { Logger } from './logger.ts';
import type { RequestScope } from './request-context.ts';
import { isoDate, type Clock } from './time.ts';

/** What every subgraph's context holds beside its loaders: one instance per request. */
export interface BaseContext extends AuthorizedContext {
  readonly correlationId: string;
  readonly logger: Logger;
  /** Verified from the gateway's internal token before anything executes. */
  readonly identity: Identity;
  /** Today's date (YYYY-MM-DD), fixed for the whole request. */
  readonly today: string;
}

export function baseContext(deps: { logger: Logger; clock: Clock }, scope: RequestScope, identity: Identity): BaseContext {
  return {
    correlationId: scope.correlationId,
    logger: deps.logger,
    identity,
    audit: new AuditTrail(identity, scope.correlationId),
    today: isoDate(deps.clock()),
  };
}

const CACHE_CONTROL = 'cache-control';
const NO_STORE = 'no-store';
const CACHE_CONTROL_HEADER = /^max-age=\d+, (public|private)$/;

/**
 * Every subgraph answer is `cache-control: no-store`: no subgraph type or field carries a cache
 * hint, and root fields default to max-age 0. This is what Apollo Server's cache-control plugin
 * computes for every answer, without hooking each field of each record to compute it: that
 * plugin is the only one that hooks every field (federated tracing does so only for a request
 * asking for a trace), and while one does, Apollo wraps every resolver of the schema.
 */
const noStore: ApolloServerPlugin<ApolloBaseContext> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        const existing = response.http.headers.get(CACHE_CONTROL);
        // As the plugin: a header it cannot parse is left alone; any other answer is uncacheable.
        if (existing === undefined || existing === NO_STORE || CACHE_CONTROL_HEADER.test(existing))
          response.http.headers.set(CACHE_CONTROL, NO_STORE);
      },
    };
  },
};

/**
 * Adds to a subgraph's Apollo Server (before it starts) what keeps per-field work to its
 * resolvers and their rules: the cache-control plugin's answer without its per-field hook.
 */
export function withoutPerFieldHooks<TContext extends ApolloBaseContext>(server: ApolloServer<TContext>): ApolloServer<TContext> {
  server.addPlugin(ApolloServerPluginCacheControlDisabled());
  server.addPlugin(noStore as ApolloServerPlugin<TContext>);
  return server;
}
