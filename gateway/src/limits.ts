import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { OperationLimits } from './config.ts';

/**
 * graphql-armor's checks, run while an operation is validated, before it is planned or sent to
 * a subgraph: depth, aliases, tokens and directives (cost: cost.ts). Field suggestions ("did you mean …")
 * are blocked in production, where they would map the schema for a stranger.
 */
export function operationLimits(limits: OperationLimits, production: boolean): ApolloArmor {
  return new ApolloArmor({
    maxDepth: { n: limits.maxDepth, ignoreIntrospection: true, exposeLimits: true },
    maxAliases: { n: limits.maxAliases, exposeLimits: true },
    maxTokens: { n: limits.maxTokens, exposeLimits: true },
    maxDirectives: { n: limits.maxDirectives, exposeLimits: true },
    // Cost is computed with the request's variables by cost.ts.
    costLimit: { enabled: false },
    blockFieldSuggestion: { enabled: production },
  });
}
