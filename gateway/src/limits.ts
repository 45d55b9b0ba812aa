import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { OperationLimits } from './config.ts';

/**
 * graphql-armor's checks, run while an operation is validated, before it is planned or sent to
 * a subgraph: depth, aliases and directives (cost: cost.ts; tokens: the parser; fields and
 * early directive counts: request-guard.ts).
 */
export function operationLimits(limits: OperationLimits): ApolloArmor {
  return new ApolloArmor({
    maxDepth: { n: limits.maxDepth, ignoreIntrospection: true, exposeLimits: true },
    maxAliases: { n: limits.maxAliases, exposeLimits: true },
    // Tokens: graphql's own parser (parseOptions.maxTokens), whose refusal is a parse error (400).
    maxTokens: { enabled: false },
    maxDirectives: { n: limits.maxDirectives, exposeLimits: true },
    // Cost is computed with the request's variables by cost.ts.
    costLimit: { enabled: false },
    // Suggestions: removed whole, for enums and arguments too, by the error formatter (server.ts).
    blockFieldSuggestion: { enabled: false },
  });
}
