import { badUserInput, refusedBySystem } from '../../../../platform/errors.ts';
import { maxLength, requireId, requireKey } from '../../../../platform/validate.ts';
import { CrmRefusal } from '../connectors/types.ts';
import type { CustomerActivityResolvers, MutationResolvers } from '../__generated__/resolvers-types.ts';

/** A write the CRM may refuse by its own rules: its refusal is REFUSED_BY_SYSTEM, final for the caller. */
async function refusable<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof CrmRefusal) throw refusedBySystem('crm', error.code, error.message);
    throw error;
  }
}

/** The activity's subject and description, as every write that records one takes them. */
function checkActivity(input: { subject: string; description?: string | null }): void {
  maxLength('input.subject', input.subject, 255);
  maxLength('input.description', input.description, 32_000);
}

export const Mutation: MutationResolvers = {
  async recordAccountOnboarding(_root, { input }, { crm, logger, today }) {
    checkActivity(input);
    maxLength('input.reason', input.reason, 255);
    if (input.status === 'ACTIVE' && !input.customerNumber) throw badUserInput('input.customerNumber', 'is needed for an ACTIVE account');
    const account = await refusable(() =>
      crm.recordAccountOnboarding({
        key: requireKey('input.idempotencyKey', input.idempotencyKey),
        accountId: requireId('input.accountId', input.accountId),
        status: input.status,
        customerNumber: input.customerNumber ? requireId('input.customerNumber', input.customerNumber) : null,
        reason: input.reason ?? null,
        subject: input.subject,
        description: input.description ?? undefined,
        activityDate: today,
      }),
    );
    if (account)
      logger.info(
        { event: 'crm.account.onboarded', accountId: account.id, customerId: account.customerId, status: input.status },
        'onboarding outcome written to the account',
      );
    return account;
  },
  async recordOpportunityOrder(_root, { input }, { crm, logger, today }) {
    checkActivity(input);
    maxLength('input.orderStatus', input.orderStatus, 40);
    const opportunity = await refusable(() =>
      crm.recordOpportunityOrder({
        key: requireKey('input.idempotencyKey', input.idempotencyKey),
        opportunityId: requireId('input.opportunityId', input.opportunityId),
        orderNumber: requireId('input.orderNumber', input.orderNumber),
        orderStatus: input.orderStatus,
        expectedShipDate: input.expectedShipDate ?? null,
        subject: input.subject,
        description: input.description ?? undefined,
        activityDate: today,
      }),
    );
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
