import { requireId } from '../../../../platform/validate.ts';
import type { CustomerActivityResolvers, MutationResolvers } from '../__generated__/resolvers-types.ts';

export const Mutation: MutationResolvers = {
  async logCustomerActivity(_root, { input }, { crm, logger, today }) {
    const activity = await crm.logActivity({
      key: requireId('input.idempotencyKey', input.idempotencyKey),
      customerId: requireId('input.customerId', input.customerId),
      subject: input.subject,
      description: input.description ?? undefined,
      activityDate: input.activityDate ?? today,
    });
    if (activity)
      logger.info({ event: 'crm.activity.logged', customerId: activity.customerId, activityId: activity.id }, 'activity logged');
    return activity;
  },
};

export const CustomerActivity: CustomerActivityResolvers = {
  customer: (activity, _args, { loaders }) => loaders.customer.load(activity.customerId),
};
