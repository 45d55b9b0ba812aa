import type { BillingScheduleResolvers } from '../__generated__/resolvers-types.ts';

export const BillingSchedule: BillingScheduleResolvers = {
  product: (schedule, _args, { loaders }) => loaders.product.load(schedule.sku),
  unitPrice: (schedule) => ({ amount: schedule.unitPrice, currency: schedule.currency }),
};
