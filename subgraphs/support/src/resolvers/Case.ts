import type { CaseResolvers } from '../__generated__/resolvers-types.ts';

export const Case: CaseResolvers = {
  __resolveReference: ({ id }, { loaders }) => loaders.case.load(id),
  assignee: (record, _args, { loaders }) => (record.assigneeId ? loaders.agent.load(record.assigneeId) : null),
  requester: (record) => (record.requesterContactId ? { id: record.requesterContactId } : null),
  customer: (record) => (record.customerId ? { id: record.customerId } : null),
  order: (record) => (record.orderNumber ? { number: record.orderNumber } : null),
  asset: (record) => (record.serialNumber ? { serialNumber: record.serialNumber } : null),
  comments: (record, _args, { loaders }) => loaders.comments.load(record.id),
};
