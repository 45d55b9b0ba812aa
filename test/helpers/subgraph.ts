import type { ApolloServer, BaseContext } from '@apollo/server';
import { afterAll, beforeAll, expect } from 'vitest';
import { silentTelemetry, type ConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import type { Identity } from '../../platform/identity.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import type { RequestScope } from '../../platform/request-context.ts';
import type { Database } from '../../platform/sqlite.ts';
import type { Clock } from '../../platform/time.ts';
import { clock } from './stack.ts';

export interface SingleResult<T> {
  data?: T | null;
  errors?: readonly { message: string; path?: readonly (string | number)[]; extensions?: Record<string, unknown> }[];
}

export type Run = <T = any>(query: string, variables?: Record<string, unknown>, identity?: Identity) => Promise<SingleResult<T>>;

/** Concord's own service identity: sees every field, for suites that test resolvers, not rules. */
export const INTEGRATION: Identity = { subject: 'test', roles: ['integration'], customerId: null };

/**
 * A subgraph's Apollo Server over one embedded database, started before the suite's tests and
 * stopped after them. Returns `run`, which executes an operation (no HTTP) with a fresh
 * per-request context, as the subgraph builds one for each request.
 */
export function useSubgraph<TContext extends BaseContext, TConnector>(spec: {
  database: Database;
  createConnector: (db: Database, telemetry: ConnectorTelemetry) => TConnector;
  createServer: (deps: { logger: Logger }) => ApolloServer<TContext>;
  createContext: (deps: {
    connector: TConnector;
    logger: Logger;
    clock: Clock;
  }) => (req: null, scope: RequestScope, identity: Identity) => Promise<TContext>;
  telemetry?: ConnectorTelemetry;
}): Run {
  const logger = createLogger('test', 'silent');
  const server = spec.createServer({ logger });
  const connector = spec.createConnector(spec.database, spec.telemetry ?? silentTelemetry('test'));
  const context = spec.createContext({ connector, logger, clock });
  beforeAll(() => server.start());
  afterAll(() => server.stop());
  return async (query, variables = {}, identity = INTEGRATION) => {
    const response = await server.executeOperation(
      { query, variables },
      { contextValue: await context(null, { correlationId: 'test' }, identity) },
    );
    expect(response.body.kind).toBe('single');
    if (response.body.kind !== 'single') throw new Error('incremental delivery is not expected here');
    return response.body.singleResult as SingleResult<any>;
  };
}
