import { Supergraph } from '@apollo/federation-internals';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';

/**
 * The client-facing API schema of a supergraph: what clients can query, without federation's
 * join and link machinery and without anything marked @inaccessible. Throws when the supergraph
 * is not a valid Federation 2 supergraph.
 */
export function apiSchemaOf(supergraphSdl: string): GraphQLSchema {
  return Supergraph.build(supergraphSdl).apiSchema().toGraphQLJSSchema();
}

/** The API schema as stable text (types and fields sorted), for storing and hashing. */
export function printApiSchema(schema: GraphQLSchema): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
