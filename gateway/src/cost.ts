import type { ApolloServerPlugin } from '@apollo/server';
import {
  getArgumentValues,
  getVariableValues,
  getNamedType,
  getNullableType,
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  getDirectiveValues,
  isCompositeType,
  isListType,
  isObjectType,
  isInterfaceType,
  Kind,
  parse,
  GraphQLError,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { listSizesOf, type ListSize, type ListSizes } from '../../platform/paging.ts';

/**
 * Items a list holds when the supergraph declares no `@listSize` for it: only a supergraph from
 * elsewhere has such lists (every list of Concord's subgraphs has one, test/gateway/cost.test.ts).
 */
const UNDECLARED_LIST = 100;

/** What a cost estimate reads: the served API schema and the list sizes its subgraphs declare. */
export interface CostModel {
  readonly schema: GraphQLSchema;
  readonly sizes: ListSizes;
}

/** The cost model of a composed supergraph: the `@listSize` of its fields (platform/paging.ts). */
export function listSizesOfSupergraph(coreSupergraphSdl: string): ListSizes {
  return listSizesOf(parse(coreSupergraphSdl));
}

/**
 * An operation's cost: each field costs 1 plus what it selects, times the items it returns.
 * Those come from the field's `@listSize`, as the subgraph applies it: the slicing argument as
 * the request sets it (a literal, a variable), its SDL default when it is left out or null,
 * never more than the list's maximum; a list without a slicing argument counts its maximum. A
 * connection's size applies to its sized fields (nodes, edges), not to the connection. Both
 * branches of an abstract type's fragments count, so the estimate never falls short.
 */
export function operationCost(
  model: CostModel,
  document: DocumentNode,
  variables: Record<string, unknown> = {},
  operationName?: string,
): number {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const operation = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0];
  if (!operation) return 0;
  const root =
    operation.operation === 'query'
      ? model.schema.getQueryType()
      : operation.operation === 'mutation'
        ? model.schema.getMutationType()
        : model.schema.getSubscriptionType();
  if (!root) return 0;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  // Variables as execution will see them: their own defaults applied ($first: Int = 100).
  const coerced = getVariableValues(model.schema, operation.variableDefinitions ?? [], variables);
  const walk = new CostWalk(model, fragments, coerced.coerced ?? variables);
  return walk.selectionCost(operation.selectionSet, root, null, new Set());
}

class CostWalk {
  /**
   * A fragment's cost by fragment, type and sizing: a document may spread one fragment many
   * times, and fragments that each spread the next twice would otherwise be walked 2^n times
   * (a 1 KB document that held the event loop for minutes).
   */
  private readonly fragmentCosts = new Map<string, number>();

  constructor(
    private readonly model: CostModel,
    private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>,
    private readonly variables: Record<string, unknown>,
  ) {}

  /** `sized`: the item count of the parent connection, for its sized fields. */
  selectionCost(
    selectionSet: SelectionSetNode,
    type: GraphQLCompositeType,
    sized: { fields: readonly string[]; items: number } | null,
    activeFragments: Set<string>,
  ): number {
    let cost = 0;
    for (const selection of selectionSet.selections) {
      if (!this.included(selection)) continue;
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition ? this.model.schema.getType(selection.typeCondition.name.value) : type;
        if (condition && isCompositeType(condition)) cost += this.selectionCost(selection.selectionSet, condition, sized, activeFragments);
        continue;
      }
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const name = selection.name.value;
        const fragment = this.fragments.get(name);
        const condition = fragment && this.model.schema.getType(fragment.typeCondition.name.value);
        if (!fragment || !condition || !isCompositeType(condition) || activeFragments.has(name)) continue;
        const key = `${name}\u0000${condition.name}\u0000${sized ? `${sized.fields.join(',')}\u0000${sized.items}` : ''}`;
        let fragmentCost = this.fragmentCosts.get(key);
        if (fragmentCost === undefined) {
          activeFragments.add(name);
          fragmentCost = this.selectionCost(fragment.selectionSet, condition, sized, activeFragments);
          activeFragments.delete(name);
          this.fragmentCosts.set(key, fragmentCost);
        }
        cost += fragmentCost;
        continue;
      }
      const name = selection.name.value;
      if (name === '__typename') {
        cost += 1;
        continue;
      }
      const field = isObjectType(type) || isInterfaceType(type) ? type.getFields()[name] : undefined;
      if (!field) continue; // validation has refused it already
      const declared = this.model.sizes.get(`${type.name}.${name}`);
      let items = this.itemsOf(field, selection, declared);
      let childSized: { fields: readonly string[]; items: number } | null = null;
      if (declared && declared.sizedFields.length) {
        childSized = { fields: declared.sizedFields, items };
        items = 1;
      }
      if (sized?.fields.includes(name)) items = sized.items;
      const named = getNamedType(field.type);
      const children =
        selection.selectionSet && isCompositeType(named)
          ? this.selectionCost(selection.selectionSet, named, childSized, activeFragments)
          : 0;
      cost += items * (1 + children);
    }
    return cost;
  }

  private itemsOf(field: GraphQLField<unknown, unknown>, node: import('graphql').FieldNode, declared: ListSize | undefined): number {
    if (!declared) return isListType(getNullableType(field.type)) ? UNDECLARED_LIST : 1;
    if (!declared.slicingArgument) return declared.maxSize;
    let value: unknown;
    try {
      value = getArgumentValues(field, node, this.variables)[declared.slicingArgument];
    } catch {
      // A value that does not coerce fails at execution with its own error; counted at most.
      return declared.maxSize;
    }
    const requested = typeof value === 'number' ? value : (declared.defaultSize ?? declared.maxSize);
    return Math.max(0, Math.min(requested, declared.maxSize));
  }

  private included(selection: SelectionSetNode['selections'][number]): boolean {
    try {
      if (getDirectiveValues(GraphQLSkipDirective, selection, this.variables)?.if === true) return false;
      if (getDirectiveValues(GraphQLIncludeDirective, selection, this.variables)?.if === false) return false;
    } catch {
      // A directive whose variable does not coerce: counted as included.
    }
    return true;
  }
}

/**
 * Refuses, before it is planned, an operation whose cost with the request's own variables
 * exceeds `maxCost` (graphql-armor's cost rule sees only literals, so `first: $n` would pass).
 * The list sizes follow the served supergraph: each one loaded is read for its `@listSize`.
 */
export function costLimit(maxCost: number): ApolloServerPlugin {
  const sizesBySchema = new WeakMap<GraphQLSchema, ListSizes>();
  return {
    async serverWillStart() {
      return {
        schemaDidLoadOrUpdate({ apiSchema, coreSupergraphSdl }) {
          if (coreSupergraphSdl) sizesBySchema.set(apiSchema, listSizesOfSupergraph(coreSupergraphSdl));
        },
      };
    },
    async requestDidStart() {
      return {
        async didResolveOperation({ schema, document, request, operationName }) {
          const sizes = sizesBySchema.get(schema as GraphQLSchema) ?? new Map<string, ListSize>();
          const cost = operationCost(
            { schema: schema as GraphQLSchema, sizes },
            document,
            request.variables ?? {},
            operationName ?? undefined,
          );
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
