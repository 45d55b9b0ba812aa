import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { ErrorCode } from '../../platform/errors.ts';
import { isCustomerScoped } from '../../platform/identity.ts';
import type { GatewayContext } from './context.ts';

/** Registered portal operations, by the sha256 (hex) of their document. */
export type RegisteredOperations = ReadonlyMap<string, string>;

/** Reads schema/operations/portal/*.graphql; each document is registered under its sha256. */
export function loadRegisteredOperations(dir: string): RegisteredOperations {
  const operations = new Map<string, string>();
  if (!existsSync(dir)) return operations;
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.graphql')) continue;
    const document = readFileSync(join(dir, file), 'utf8');
    operations.set(createHash('sha256').update(document).digest('hex'), document);
  }
  return operations;
}

/** The part of Apollo Server's key-value cache interface its persisted queries use. */
interface PersistedQueryStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<boolean | void>;
}

/**
 * Apollo's persisted query store, holding exactly the registered operations, so a client can
 * send one by id alone (`extensions.persistedQuery.sha256Hash`). It learns nothing: a client
 * that sends an unknown id gets PERSISTED_QUERY_NOT_FOUND and, per the protocol, sends the
 * text, which staff may run and portal customers may not.
 */
export function registeredQueryStore(registered: RegisteredOperations): PersistedQueryStore {
  return {
    get: async (key) => registered.get(key.slice(key.lastIndexOf(':') + 1)),
    set: async () => {},
    delete: async () => false,
  };
}

/**
 * A portal customer may run only the registered portal operations, sent by id or as the
 * identical text; anything else is FORBIDDEN before it is planned or sent to a subgraph.
 */
export function registeredOperationsOnly(registered: RegisteredOperations): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, queryHash }) {
          // A live push answers a subscription that was itself checked as registered (live/hub.ts).
          if (isCustomerScoped(contextValue.identity) && !contextValue.live && !registered.has(queryHash)) {
            throw new GraphQLError('Portal identities may run only the registered portal operations', {
              extensions: { code: ErrorCode.Forbidden, http: { status: 403 } },
            });
          }
        },
      };
    },
  };
}
