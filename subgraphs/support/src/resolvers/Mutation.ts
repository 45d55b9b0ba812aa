import { badUserInput } from '../../../../platform/errors.ts';
import { maxItems, maxLength, requireId } from '../../../../platform/validate.ts';
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
  async setEntitlement(_root, { input }, { desk, logger }) {
    const customerId = requireId('input.customerId', input.customerId);
    const subscriptionId = requireId('input.subscriptionId', input.subscriptionId);
    if (input.until != null && !/^\d{4}-\d{2}-\d{2}$/.test(input.until)) throw badUserInput('input.until', 'must be a date (YYYY-MM-DD)');
    const entitlements = await desk.setEntitlement({
      customerId,
      subscriptionId,
      tier: input.tier,
      active: input.active,
      until: input.until ?? null,
    });
    if (entitlements)
      logger.info({ event: 'entitlement.set', customerId, subscriptionId, tier: input.tier, active: input.active }, 'entitlement set');
    return entitlements;
  },
  async recordInstalledBase(_root, { input }, { desk, logger }) {
    const customerId = requireId('input.customerId', input.customerId);
    const orderNumber = requireId('input.orderNumber', input.orderNumber);
    maxItems('input.items', input.items, 200);
    const items = input.items.map((item, i) => {
      maxLength(`input.items[${i}].name`, item.name, 255);
      if (!Number.isInteger(item.quantity) || item.quantity < 1) throw badUserInput(`input.items[${i}].quantity`, 'must be 1 or more');
      return {
        sku: requireId(`input.items[${i}].sku`, item.sku),
        name: item.name ?? null,
        quantity: item.quantity,
        warrantyMonths: item.warrantyMonths ?? null,
      };
    });
    const recorded = await desk.recordInstalledBase({ customerId, orderNumber, items });
    if (recorded)
      logger.info({ event: 'installed_base.recorded', customerId, orderNumber, products: recorded.length }, 'installed base recorded');
    return recorded;
  },
};
