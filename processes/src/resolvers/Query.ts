import { badUserInput } from '../../../platform/errors.ts';
import { requireId } from '../../../platform/validate.ts';
import type { WorkflowInstance, WorkflowState } from '../../../platform/workflow/engine.ts';
import type { QueryResolvers } from '../__generated__/resolvers-types.ts';

export interface WorkflowConnectionModel {
  nodes: WorkflowInstance[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** The largest page; a larger `first` is refused by the list bound in the SDL before it gets here. */
const MAX_PAGE = 100;

/** A cursor names the instance a page ended on (its creation order), opaque to clients. */
const cursorOf = (seq: number) => Buffer.from(`workflow:${seq}`).toString('base64url');

function seqOf(cursor: string): number {
  const match = /^workflow:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw badUserInput('after', 'must be an endCursor of an earlier page');
  return Number(match[1]);
}

export const Query: QueryResolvers = {
  workflow: (_root, { id }, { details }) => details.load(requireId('id', id)),
  workflows: async (_root, { filter, first, after }, { engine }) => {
    const size = first ?? 25;
    if (size < 0 || size > MAX_PAGE) throw badUserInput('first', `must be between 0 and ${MAX_PAGE} (got ${size})`);
    let since: number | undefined;
    if (filter?.since != null) {
      since = Date.parse(filter.since);
      if (Number.isNaN(since))
        throw badUserInput('filter.since', `must be an ISO 8601 instant (got ${JSON.stringify(filter.since.slice(0, 40))})`);
    }
    const found = await engine.list({
      ...(filter?.type != null ? { type: filter.type } : {}),
      ...(filter?.state != null ? { state: filter.state.toLowerCase() as WorkflowState } : {}),
      ...(filter?.customerId != null ? { customerId: requireId('filter.customerId', filter.customerId) } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(after != null ? { before: seqOf(after) } : {}),
      limit: size + 1,
    });
    const nodes = found.slice(0, size);
    const last = nodes.at(-1);
    return { nodes, pageInfo: { hasNextPage: found.length > size, endCursor: last ? cursorOf(last.seq) : null } };
  },
};
