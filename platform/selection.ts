import type { FieldNode, GraphQLResolveInfo, SelectionSetNode } from 'graphql';

/**
 * What a request selects of one type, read from the resolver's info before its fields run, so
 * a resolver can fetch everything the selection will need from its system in one round trip
 * instead of one trip per dependent field. Fragments (inline and named) are followed when their
 * type condition is the type or absent; a field under @skip or @include counts as selected, so
 * the answer may hold more than runs, never less.
 */
export interface Selection {
  /** Whether the field is selected (under any alias). */
  has(field: string): boolean;
  /** What is selected under the field (the union over its aliases); empty when it is not selected. */
  under(field: string): Selection;
}

const NOTHING: Selection = { has: () => false, under: () => NOTHING };

/**
 * The fields selected on `typeName` by the field being resolved (for `_entities` in
 * `__resolveReference`, the fields of that entity type; for a root field, of its result).
 */
export function selectionOf(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>, typeName: string): Selection {
  // Read once per field of a parsed document, not once per entity it resolves (a hundred
  // representations in one `_entities` share it).
  const node = info.fieldNodes.length === 1 ? info.fieldNodes[0]! : undefined;
  const known = node ? read.get(node)?.get(typeName) : undefined;
  if (known) return known;
  const sets = info.fieldNodes.flatMap((field) => (field.selectionSet ? [field.selectionSet] : []));
  const selection = selectionFrom(sets, typeName, info.fragments);
  if (node) {
    const byType = read.get(node) ?? new Map<string, Selection>();
    byType.set(typeName, selection);
    read.set(node, byType);
  }
  return selection;
}

const read = new WeakMap<FieldNode, Map<string, Selection>>();

function selectionFrom(sets: readonly SelectionSetNode[], typeName: string | null, fragments: GraphQLResolveInfo['fragments']): Selection {
  const fields = new Map<string, FieldNode[]>();
  const visit = (set: SelectionSetNode, seen: ReadonlySet<string>) => {
    for (const selection of set.selections) {
      if (selection.kind === 'Field') {
        const list = fields.get(selection.name.value) ?? [];
        list.push(selection);
        fields.set(selection.name.value, list);
      } else if (selection.kind === 'InlineFragment') {
        if (applies(selection.typeCondition?.name.value, typeName)) visit(selection.selectionSet, seen);
      } else {
        const name = selection.name.value;
        const fragment = fragments[name];
        if (fragment && !seen.has(name) && applies(fragment.typeCondition.name.value, typeName)) {
          visit(fragment.selectionSet, new Set([...seen, name]));
        }
      }
    }
  };
  for (const set of sets) visit(set, new Set());
  if (fields.size === 0) return NOTHING;
  return {
    has: (field) => fields.has(field),
    // Below the first level the type is the field's own: every fragment there is followed.
    under: (field) =>
      selectionFrom(
        (fields.get(field) ?? []).flatMap((node) => (node.selectionSet ? [node.selectionSet] : [])),
        null,
        fragments,
      ),
  };
}

/** A fragment applies when it names the type, names none, or the type is not known (below the first level). */
function applies(condition: string | undefined, typeName: string | null): boolean {
  return condition === undefined || typeName === null || condition === typeName;
}

/**
 * Starts a load a field will make later, so it runs beside the one its parent waits for. The
 * loader keeps the promise: the field gets the same answer, or the same error, when it asks
 * (an entity that is not returned never asks, and its failed load is not an unhandled one).
 */
export function startEarly(load: Promise<unknown>): void {
  load.catch(() => undefined);
}
