import { badUserInput } from '../../../../platform/errors.ts';
import { requireId, requirePageSize } from '../../../../platform/validate.ts';
import type { CaseFilterInput, CasePage } from '../connectors/types.ts';
import type { CaseConnectionResolvers, QueryResolvers } from '../__generated__/resolvers-types.ts';

/** What Query.cases hands to CaseConnection's fields: one page, and the filter for totalCount. */
export interface CaseConnectionModel {
  page: CasePage;
  filter: CaseFilterInput;
}

const MAX_PAGE = 100;
const CURSOR_PREFIX = 'case:';

/** Cursors are opaque to clients: base64url of the last case id of a page. */
export function encodeCursor(caseId: string): string {
  return Buffer.from(CURSOR_PREFIX + caseId).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = decoded.startsWith(CURSOR_PREFIX) ? decoded.slice(CURSOR_PREFIX.length) : '';
  if (!/^[1-9]\d{0,15}$/.test(id)) throw badUserInput('after', `is not a cursor this API returned: ${JSON.stringify(cursor.slice(0, 80))}`);
  return id;
}

/** Case ids are the desk's ticket numbers: positive integers. */
export function requireCaseId(argument: string, value: string): string {
  const id = requireId(argument, value);
  if (!/^[1-9]\d{0,15}$/.test(id))
    throw badUserInput(argument, `must be a case number (a positive integer), but got ${JSON.stringify(id)}`);
  return id;
}

export const Query: QueryResolvers = {
  case: (_root, { id }, { loaders }) => loaders.case.load(requireCaseId('id', id)),
  async cases(_root, { filter, first, after }, { loaders, desk }) {
    const limit = requirePageSize('first', first, MAX_PAGE, 25);
    const afterId = after ? decodeCursor(after) : undefined;
    const search: CaseFilterInput = {
      statuses: filter?.status ?? undefined,
      priorities: filter?.priority ?? undefined,
      customerId: filter?.customerId ? requireId('filter.customerId', filter.customerId) : undefined,
      assigneeId: filter?.assignee ? requireCaseId('filter.assignee', filter.assignee) : undefined,
    };
    const page = await desk.searchCases({ filter: search, limit, afterId });
    // Nested fields and _entities in the same request then find these cases without a call.
    for (const record of page.records) loaders.case.prime(record.id, record);
    return { page, filter: search };
  },
};

export const CaseConnection: CaseConnectionResolvers = {
  edges: ({ page }) => page.records.map((node) => ({ cursor: encodeCursor(node.id), node })),
  nodes: ({ page }) => page.records,
  pageInfo: ({ page }) => {
    const last = page.records.at(-1);
    return { hasNextPage: page.hasNextPage, endCursor: last ? encodeCursor(last.id) : null };
  },
  totalCount: ({ filter }, _args, { desk }) => desk.countCases(filter),
};
