import { refusedBySystem } from '../../../../platform/errors.ts';
import { maxLength, requireId, requireKey } from '../../../../platform/validate.ts';
import { CrmRefusal } from '../connectors/types.ts';
import type { CustomerActivityResolvers, MutationResolvers } from '../__generated__/resolvers-types.ts';

export const Mutation: MutationResolvers = {
  async recordOpportunityOrder(_root, { input }, { crm, logger, today }) {
    maxLength('input.subject', input.subject, 255);
    maxLength('input.description', input.description, 32_000);
    maxLength('input.orderStatus', input.orderStatus, 40);
    let opportunity;
    try {
      opportunity = await crm.recordOpportunityOrder({
        key: requireKey('input.idempotencyKey', input.idempotencyKey),
        opportunityId: requireId('input.opportunityId', input.opportunityId),
        orderNumber: requireId('input.orderNumber', input.orderNumber),
        orderStatus: input.orderStatus,
        expectedShipDate: input.expectedShipDate ?? null,
        subject: input.subject,
        description: input.description ?? undefined,
        activityDate: today,
      });
    } catch (error) {
      if (error instanceof CrmRefusal) throw refusedBySystem('crm', error.code, error.message);
      throw error;
    }
    if (opportunity)
      logger.info(
        {
          event: 'crm.opportunity.ordered',
          opportunityId: opportunity.id,
          customerId: opportunity.customerId,
          orderNumber: input.orderNumber,
        },
        'order written back to the opportunity',
      );
    return opportunity;
  },
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
