import { requireId } from '../../../../platform/validate.ts';
import type { MutationResolvers } from '../__generated__/resolvers-types.ts';
import { requireCaseId } from './Query.ts';

export const Mutation: MutationResolvers = {
  async recordCaseUpdate(_root, { input }, { desk, logger }) {
    const caseId = requireCaseId('input.caseId', input.caseId);
    const key = requireId('input.idempotencyKey', input.idempotencyKey);
    const updated = await desk.applyCaseUpdate({
      key,
      caseId,
      internalNote: input.internalNote ?? undefined,
      status: input.status ?? undefined,
    });
    if (updated) logger.info({ event: 'case.updated', caseId, status: updated.status, key }, 'case updated');
    return updated;
  },
};
