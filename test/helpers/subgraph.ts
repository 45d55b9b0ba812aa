import type { ApolloServer, BaseContext } from '@apollo/server';
import { expect } from 'vitest';

export interface SingleResult<T> {
  data?: T | null;
  errors?: readonly { message: string; path?: readonly (string | number)[]; extensions?: Record<string, unknown> }[];
}

/** Runs an operation on a subgraph's Apollo Server (no HTTP) with a fresh per-request context. */
export async function execute<T = any, C extends BaseContext = BaseContext>(
  server: ApolloServer<C>,
  contextValue: () => Promise<C>,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<SingleResult<T>> {
  const response = await server.executeOperation({ query, variables }, { contextValue: await contextValue() });
  expect(response.body.kind).toBe('single');
  if (response.body.kind !== 'single') throw new Error('incremental delivery is not expected here');
  return response.body.singleResult as SingleResult<T>;
}
