import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, getNullableType, isListType, type GraphQLSchema } from 'graphql';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';

/** Rows a list without a page size is assumed to hold (a case's comments, an order's lines). */
const UNSIZED_LIST = 10;

/**
 * Each field costs 1 plus what it selects, times the rows it returns: its `first` argument as
 * the request sets it (a literal, a variable, or the schema's default), or an estimate for a
 * list without one. Connections' own lists (nodes, edges) count once: `first` already did.
 */
const rowsEstimator: ComplexityEstimator = ({ field, args, childComplexity }) => {
  const type = getNullableType(field.type);
  let rows = 1;
  if (typeof args.first === 'number') rows = Math.max(0, args.first);
  else if (isListType(type) && field.name !== 'nodes' && field.name !== 'edges') rows = UNSIZED_LIST;
  return rows * (1 + childComplexity);
};

/**
 * Refuses, before it is planned, an operation whose cost with the request's own variables
 * exceeds `maxCost` (graphql-armor's cost rule sees only literals, so `first: $n` would pass).
 */
export function costLimit(maxCost: number): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ schema, document, request, operationName }) {
          const cost = getComplexity({
            schema: schema as GraphQLSchema,
            query: document,
            variables: request.variables ?? {},
            ...(operationName ? { operationName } : {}),
            estimators: [rowsEstimator],
          });
          if (cost > maxCost) {
            throw new GraphQLError(
              `Operation cost ${cost} exceeds the limit of ${maxCost}; ask for fewer rows (first) or fewer nested lists`,
              {
                extensions: { code: 'OPERATION_TOO_COSTLY', cost, maxCost, http: { status: 400 } },
              },
            );
          }
        },
      };
    },
  };
}

/** An operation's cost as costLimit computes it (for tests and tools). */
export function operationCost(
  schema: GraphQLSchema,
  query: import('graphql').DocumentNode,
  variables: Record<string, unknown> = {},
): number {
  return getComplexity({ schema, query, variables, estimators: [rowsEstimator] });
}
