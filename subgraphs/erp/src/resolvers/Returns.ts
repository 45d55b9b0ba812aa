import { badUserInput } from '../../../../platform/errors.ts';
import { requireId } from '../../../../platform/validate.ts';
import type {
  CaseResolvers,
  MutationResolvers,
  ReturnAuthorizationLineResolvers,
  ReturnAuthorizationResolvers,
} from '../__generated__/resolvers-types.ts';
import { returnValue } from '../returns/validate.ts';

export const Mutation: MutationResolvers = {
  async createReturnOrder(_root, { input }, { returns }) {
    if (!returns) throw new Error('return orders are not written by this ERP subgraph');
    if (input.reference.trim() === '') throw badUserInput('input.reference', 'must be 1 to 128 characters');
    if (input.approval && !(input.approval.windowHours > 0)) throw badUserInput('input.approval.windowHours', 'must be above 0');
    const outcome = await returns.create({
      reference: input.reference,
      caseId: requireId('input.caseId', input.caseId),
      customerId: requireId('input.customerId', input.customerId),
      resolution: input.resolution,
      lines: input.lines.map((line) => ({
        serialNumber: line.serialNumber ?? null,
        orderLine: line.orderLine ?? null,
        quantity: line.quantity,
        reason: line.reason,
      })),
      approval: input.approval ?? null,
    });
    return { returnAuthorization: outcome.returnOrder, errors: outcome.errors, total: outcome.total };
  },
  async createSalesOrder(_root, { input }, { salesOrders }) {
    if (!salesOrders) throw new Error('sales orders are not written by this ERP subgraph');
    const outcome = await salesOrders.create({
      reference: input.reference,
      customerId: requireId('input.customerId', input.customerId),
      currency: input.currency ?? null,
      lines: input.lines.map((line) => ({
        sku: line.sku.trim(),
        quantity: line.quantity,
        unitPrice: line.unitPrice,
        description: line.description ?? null,
      })),
    });
    return outcome;
  },
  async onboardCustomer(_root, { input }, { onboarding }) {
    if (!onboarding) throw new Error('customers are not onboarded by this ERP subgraph');
    const outcome = await onboarding.onboard({
      reference: input.reference,
      name: input.name,
      email: input.email ?? null,
      phone: input.phone ?? null,
      address: input.address
        ? {
            street: input.address.street ?? null,
            city: input.address.city ?? null,
            state: input.address.state ?? null,
            postalCode: input.address.postalCode ?? null,
            country: input.address.country ?? null,
          }
        : null,
      currency: input.currency.trim().toUpperCase(),
      taxRegistrationNumber: input.taxRegistrationNumber ?? null,
    });
    return { customer: outcome.customer ? { id: outcome.customer.id } : null, errors: outcome.errors, created: outcome.created };
  },
  async applyBillingChange(_root, { input }, { billing }) {
    if (!billing) throw new Error('subscriptions are not billed by this ERP subgraph');
    return billing.apply({
      key: input.key,
      subscriptionId: requireId('input.subscriptionId', input.subscriptionId),
      customerId: requireId('input.customerId', input.customerId),
      sku: requireId('input.plan', input.plan),
      quantity: input.quantity,
      unitPrice: input.unitPrice,
      frequency: input.frequency,
      status: input.status,
      startDate: input.startDate,
      endDate: input.endDate ?? null,
      currency: input.currency.trim().toUpperCase(),
    });
  },
  async blockCustomer(_root, { input }, { onboarding }) {
    if (!onboarding) throw new Error('customers are not blocked by this ERP subgraph');
    const number = requireId('input.number', input.number);
    return { number, blocked: await onboarding.block(number) };
  },
  async cancelSalesOrder(_root, { input }, { salesOrders }) {
    if (!salesOrders) throw new Error('sales orders are not written by this ERP subgraph');
    const number = requireId('input.number', input.number);
    const outcome = await salesOrders.cancel(number);
    return { number, outcome: outcome.toUpperCase() as Uppercase<typeof outcome> };
  },
};

export const ReturnAuthorization: ReturnAuthorizationResolvers = {
  __resolveReference: ({ number }, { loaders }) => loaders.returnOrder.load(number),
  case: (order) => (order.caseId ? { id: order.caseId } : null),
  customer: (order) => ({ id: order.customerId }),
  lines: (order, _args, { loaders }) => loaders.returnLines.load(order.number),
  async total(order, _args, { loaders }) {
    const lines = await loaders.returnLines.load(order.number);
    return { amount: returnValue(lines).amount, currency: order.currency };
  },
};

export const ReturnAuthorizationLine: ReturnAuthorizationLineResolvers = {
  product: (line, _args, { loaders }) => loaders.product.load(line.sku),
  order: (line, _args, { loaders }) => (line.orderNumber ? loaders.order.load(line.orderNumber) : null),
};

/** The ERP adds to cases the return authorizations created from them. */
export const Case: CaseResolvers = {
  __resolveReference: ({ id }) => ({ id }),
  returnAuthorizations: ({ id }, _args, { loaders }) => loaders.returnsByCase.load(id),
};
