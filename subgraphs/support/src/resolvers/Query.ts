import { badUserInput } from '../../../../platform/errors.ts';
import { forbidden, isCustomerScoped, withinScope, type Identity } from '../../../../platform/identity.ts';
import { pageSize } from '../../../../platform/paging.ts';
import { listFilter, requireId } from '../../../../platform/validate.ts';
import type { CaseFilterInput, CasePage } from '../connectors/types.ts';
import { loadCase } from './Case.ts';
import type { CaseConnectionResolvers, QueryResolvers } from '../__generated__/resolvers-types.ts';

/** What Query.cases hands to CaseConnection's fields: one page, and the filter for totalCount. */
export interface CaseConnectionModel {
  page: CasePage;
  filter: CaseFilterInput;
}

const CURSOR_PREFIX = 'case:';

/** Desk ids (tickets, agents) are positive integers that fit a JavaScript number exactly. */
function deskId(value: string): string | null {
  return /^[1-9]\d{0,15}$/.test(value) && Number.isSafeInteger(Number(value)) ? value : null;
}

/** Cursors are opaque to clients: base64url of the last case id of a page. */
export function encodeCursor(caseId: string): string {
  return Buffer.from(CURSOR_PREFIX + caseId).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = decoded.startsWith(CURSOR_PREFIX) ? deskId(decoded.slice(CURSOR_PREFIX.length)) : null;
  if (id === null) throw badUserInput('after', `is not a cursor this API returned: ${JSON.stringify(cursor.slice(0, 80))}`);
  return id;
}

/** Case ids are the desk's ticket numbers. */
export function requireCaseId(argument: string, value: string): string {
  const id = deskId(requireId(argument, value));
  if (id === null)
    throw badUserInput(argument, `must be a case number (a positive integer), but got ${JSON.stringify(value.slice(0, 80))}`);
  return id;
}

function requireAgentId(argument: string, value: string): string {
  const id = deskId(requireId(argument, value));
  if (id === null) throw badUserInput(argument, `must be an agent id (a positive integer), but got ${JSON.stringify(value.slice(0, 80))}`);
  return id;
}

/** A portal customer's search is always its own customer's, and may name no other. */
function customerFilter(identity: Identity, requested: string | null | undefined): string | undefined {
  const customerId = requested == null ? undefined : requireId('filter.customerId', requested);
  if (!isCustomerScoped(identity)) return customerId;
  if (identity.customerId === null || (customerId !== undefined && customerId !== identity.customerId)) throw forbidden();
  return identity.customerId;
}

export const Query: QueryResolvers = {
  case: async (_root, { id }, { loaders, identity }, info) =>
    withinScope(identity, await loadCase(loaders, requireCaseId('id', id), info), (record) => record.customerId),
  async cases(_root, { filter, first, after }, { loaders, desk, identity }) {
    const limit = pageSize(first);
    // Present-but-empty values are errors, never a wider search: a filter that silently fell
    // away would hand back every customer's cases.
    const afterId = after == null ? undefined : decodeCursor(after);
    const search: CaseFilterInput = {
      statuses: listFilter('filter.status', filter?.status),
      priorities: listFilter('filter.priority', filter?.priority),
      customerId: customerFilter(identity, filter?.customerId),
      assigneeId: filter?.assignee == null ? undefined : requireAgentId('filter.assignee', filter.assignee),
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
