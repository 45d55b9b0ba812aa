import {
  defaultFieldResolver,
  isObjectType,
  Kind,
  valueFromASTUntyped,
  type DirectiveNode,
  type DocumentNode,
  type FieldDefinitionNode,
  type GraphQLSchema,
} from 'graphql';
import { badUserInput } from './errors.ts';
import type { Logger } from './logger.ts';
import { SystemCallError } from './resilience.ts';

/** More pages than any read of ours needs: past this, a vendor's "more" flag is not believed. */
export const MAX_PAGES = 1_000;

/**
 * Guards a paging loop against a system that keeps saying "more": each next cursor (URL,
 * locator, token) must be new, and the pages must stay below MAX_PAGES. Call `next(cursor)`
 * before fetching each page after the first.
 */
export function pagingGuard(system: string, operation: string): { next(cursor: string): void } {
  const seen = new Set<string>();
  return {
    next(cursor) {
      if (seen.has(cursor)) throw new SystemCallError(`${system} ${operation}: the next page repeats an earlier one`, { retryable: false });
      seen.add(cursor);
      if (seen.size >= MAX_PAGES) throw new SystemCallError(`${system} ${operation}: more than ${MAX_PAGES} pages`, { retryable: false });
    },
  };
}

/**
 * How many items one list field may hold, as its SDL declares with Apollo's demand-control
 * directive `@listSize` (https://specs.apollo.dev/cost/v0.1). This is the one place page sizes
 * are defined: the subgraph applies them (enforceListSizes) and the gateway's cost estimate
 * reads them from the composed supergraph (gateway/src/cost.ts), so the two cannot disagree.
 *
 * - A paged list names its slicing argument (`slicingArguments: ["first"]`): the argument's SDL
 *   default is the page size when the argument is left out or null, and `assumedSize` is the
 *   largest page the subgraph serves (a larger one is refused). Apollo's router reads the same
 *   directive and uses `assumedSize` when no slicing value is given, so it never counts fewer.
 * - A list without a slicing argument (a case's comments, an order's lines) holds at most
 *   `assumedSize` items: the subgraph cuts a longer one.
 * - `sizedFields` (a connection's `nodes`, `edges`) are the lists the size applies to, when the
 *   field itself returns an object.
 */
export interface ListSize {
  /** The argument that sets the page size, if the list is paged. */
  readonly slicingArgument: string | null;
  /** The page size when the slicing argument is left out or null (its SDL default). */
  readonly defaultSize: number | null;
  /** The most items the list holds. */
  readonly maxSize: number;
  /** Lists under the field that the size applies to (a connection's nodes, edges). */
  readonly sizedFields: readonly string[];
}

/** List sizes by field coordinate (`Customer.orders`). */
export type ListSizes = ReadonlyMap<string, ListSize>;

const COST_SPEC = /^https:\/\/specs\.apollo\.dev\/cost\/v/;
const FEDERATION_SPEC = /^https:\/\/specs\.apollo\.dev\/federation\/v/;

/**
 * The `@listSize` of every field of a subgraph's SDL or of a composed supergraph. Throws, naming
 * the field, when one cannot be applied as declared: a slicing argument that is not one Int
 * argument with a default, or no `assumedSize` to bound the list by.
 */
export function listSizesOf(document: DocumentNode): ListSizes {
  const directive = listSizeDirectiveName(document);
  const sizes = new Map<string, ListSize>();
  for (const definition of document.definitions) {
    if (!('fields' in definition) || !definition.fields || !('name' in definition) || !definition.name) continue;
    if (definition.kind === Kind.INPUT_OBJECT_TYPE_DEFINITION || definition.kind === Kind.INPUT_OBJECT_TYPE_EXTENSION) continue;
    for (const field of definition.fields as readonly FieldDefinitionNode[]) {
      const applied = field.directives?.find((node) => node.name.value === directive);
      if (!applied) continue;
      const coordinate = `${definition.name.value}.${field.name.value}`;
      sizes.set(coordinate, listSizeOf(coordinate, field, applied));
    }
  }
  return sizes;
}

function listSizeOf(coordinate: string, field: FieldDefinitionNode, applied: DirectiveNode): ListSize {
  const values = Object.fromEntries(
    (applied.arguments ?? []).map((argument) => [argument.name.value, valueFromASTUntyped(argument.value)]),
  );
  const invalid = (why: string) => new Error(`@listSize on ${coordinate}: ${why}`);
  const maxSize = values.assumedSize;
  if (typeof maxSize !== 'number' || !Number.isInteger(maxSize) || maxSize < 1)
    throw invalid('needs assumedSize, the most items the list holds (a positive integer)');
  const slicing = Array.isArray(values.slicingArguments) ? (values.slicingArguments as unknown[]) : [];
  const sizedFields = Array.isArray(values.sizedFields) ? (values.sizedFields as unknown[]).map(String) : [];
  if (slicing.length === 0) return { slicingArgument: null, defaultSize: null, maxSize, sizedFields };
  if (slicing.length > 1) throw invalid('one slicing argument at most');
  const name = String(slicing[0]);
  const argument = field.arguments?.find((node) => node.name.value === name);
  const defaultSize = argument?.defaultValue ? valueFromASTUntyped(argument.defaultValue) : undefined;
  if (!argument || typeof defaultSize !== 'number' || !Number.isInteger(defaultSize) || defaultSize < 1 || defaultSize > maxSize)
    throw invalid(`slicing argument "${name}" must be an Int argument with a default between 1 and assumedSize (${maxSize})`);
  return { slicingArgument: name, defaultSize, maxSize, sizedFields };
}

/** The name `@listSize` goes by in this document: imported by a federation or cost @link, or the spec's own prefix. */
function listSizeDirectiveName(document: DocumentNode): string {
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    for (const link of definition.directives ?? []) {
      if (link.name.value !== 'link') continue;
      const args = Object.fromEntries((link.arguments ?? []).map((argument) => [argument.name.value, valueFromASTUntyped(argument.value)]));
      const url = String(args.url ?? '');
      const spec = COST_SPEC.test(url) ? 'cost' : FEDERATION_SPEC.test(url) ? 'federation' : null;
      if (!spec) continue;
      for (const imported of Array.isArray(args.import) ? (args.import as unknown[]) : []) {
        if (imported === '@listSize') return 'listSize';
        if (imported && typeof imported === 'object' && (imported as { name?: unknown }).name === '@listSize')
          return String((imported as { as?: unknown }).as ?? '@listSize').replace(/^@/, '');
      }
      if (spec === 'cost') return `${typeof args.as === 'string' ? args.as : 'cost'}__listSize`;
    }
  }
  return 'listSize';
}

/**
 * The page size a paged list's resolver gets: its argument as enforceListSizes set it. Throws
 * when the field has no `@listSize` with a slicing argument (so the value was never checked).
 */
export function pageSize(value: number | null | undefined): number {
  if (typeof value !== 'number') throw new Error('page size not set: the field needs @listSize(slicingArguments: [...]) in its SDL');
  return value;
}

/**
 * Applies each field's `@listSize` to a built subgraph schema, around its resolver: a paged
 * list's slicing argument left out or null becomes its SDL default, and one outside 1..maxSize
 * is refused with BAD_USER_INPUT naming the argument; a list without a slicing argument is cut
 * to maxSize (and the cut logged), so no answer holds more than the gateway counted.
 */
export function enforceListSizes(schema: GraphQLSchema, sizes: ListSizes, logger: Logger): GraphQLSchema {
  for (const [coordinate, size] of sizes) {
    const [typeName, fieldName] = coordinate.split('.') as [string, string];
    const type = schema.getType(typeName);
    const field = isObjectType(type) ? type.getFields()[fieldName] : undefined;
    if (!field) throw new Error(`@listSize on ${coordinate}: no such field in the schema`);
    const resolve = field.resolve ?? defaultFieldResolver;
    const argument = size.slicingArgument;
    if (argument) {
      field.resolve = (source, args: Record<string, unknown>, context, info) =>
        resolve(source, { ...args, [argument]: checkedPageSize(argument, args[argument], size) }, context, info);
    } else if (size.sizedFields.length === 0) {
      const cut = (list: unknown) => {
        if (!Array.isArray(list) || list.length <= size.maxSize) return list;
        logger.warn({ field: coordinate, items: list.length, maxSize: size.maxSize }, `${coordinate}: list cut to its @listSize`);
        return list.slice(0, size.maxSize);
      };
      field.resolve = (source, args, context, info) => {
        const result = resolve(source, args, context, info) as unknown;
        return result instanceof Promise ? result.then(cut) : cut(result);
      };
    }
  }
  return schema;
}

function checkedPageSize(argument: string, value: unknown, size: ListSize): number {
  const chosen = value ?? size.defaultSize;
  if (typeof chosen !== 'number' || !Number.isInteger(chosen) || chosen < 1 || chosen > size.maxSize)
    throw badUserInput(argument, `must be between 1 and ${size.maxSize}, but got ${String(chosen)}`);
  return chosen;
}
