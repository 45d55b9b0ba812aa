import { ownOrNull } from '../../../../platform/identity.ts';
import type { OpportunityResolvers } from '../__generated__/resolvers-types.ts';

/** An ERP order the CRM knows only by its number; the ERP resolves the rest. */
export interface OrderRefModel {
  number: string;
}

export const Opportunity: OpportunityResolvers = {
  __resolveReference: async ({ id }, { loaders, identity }) => ownOrNull(identity, await loaders.opportunity.load(id), (o) => o.customerId),
  closed: (opportunity) => opportunity.isClosed,
  won: (opportunity) => opportunity.isWon,
  customer: (opportunity, _args, { loaders }) => (opportunity.customerId ? loaders.customer.load(opportunity.customerId) : null),
  lines: (opportunity, _args, { loaders }) => loaders.opportunityLines.load(opportunity.id),
  order: (opportunity) => (opportunity.erpOrderNumber ? { number: opportunity.erpOrderNumber } : null),
  orderStatus: (opportunity) => opportunity.erpOrderStatus,
};
