import { ownOrNull, type Identity } from '../../../../platform/identity.ts';
import type { CaseResolvers } from '../__generated__/resolvers-types.ts';

function seesInternalNotes(identity: Identity): boolean {
  return identity.roles.some((role) => role === 'support_agent' || role === 'support_lead' || role === 'integration');
}

export const Case: CaseResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.case.load(id), (c) => c.customerId),
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
