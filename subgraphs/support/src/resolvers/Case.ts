import type { GraphQLResolveInfo } from 'graphql';
import { ownOrNull, type Identity } from '../../../../platform/identity.ts';
import { selectionOf } from '../../../../platform/selection.ts';
import type { Loaders } from '../loaders.ts';
import type { CaseResolvers } from '../__generated__/resolvers-types.ts';

/**
 * The case, with every part its query selects (comments, assignee, the customer's open-case
 * count) read in the same trip to the desk; a case selected alone is read with its siblings'
 * plain case reads.
 */
export function loadCase(loaders: Loaders, id: string, info: GraphQLResolveInfo) {
  const selection = selectionOf(info, 'Case');
  const parts = {
    comments: selection.has('comments'),
    assignee: selection.has('assignee'),
    openCaseCount: selection.under('customer').has('openCaseCount'),
  };
  return parts.comments || parts.assignee || parts.openCaseCount ? loaders.caseGraph.load({ key: id, args: parts }) : loaders.case.load(id);
}

function seesInternalNotes(identity: Identity): boolean {
  return identity.roles.some((role) => role === 'support_agent' || role === 'support_lead' || role === 'integration');
}

export const Case: CaseResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }, info) =>
    ownOrNull(identity, await loadCase(loaders, id, info), (c) => c.customerId),
  assignee: (record, _args, { loaders }) => (record.assigneeId ? loaders.agent.load(record.assigneeId) : null),
  requester: (record) => (record.requesterContactId ? { id: record.requesterContactId } : null),
  customer: (record) => (record.customerId ? { id: record.customerId } : null),
  order: (record) => (record.orderNumber ? { number: record.orderNumber } : null),
  asset: (record) => (record.serialNumber ? { serialNumber: record.serialNumber } : null),
  async comments(record, _args, { loaders, identity }) {
    const comments = await loaders.comments.load(record.id);
    // Internal notes are for the people who work the case.
    return seesInternalNotes(identity) ? comments : comments.filter((comment) => comment.public);
  },
};
