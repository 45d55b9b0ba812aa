import { badUserInput } from '../../../../platform/errors.ts';
import { maxLength } from '../../../../platform/validate.ts';
import type { BillingChange, BillingScheduleRecord, ErpConnector } from '../connectors/types.ts';

export type BillingChangeErrorCode = 'UNKNOWN_CUSTOMER' | 'UNKNOWN_PLAN' | 'INVALID_QUANTITY' | 'CURRENCY_MISMATCH';

export interface BillingChangeError {
  code: BillingChangeErrorCode;
  message: string;
  field: string | null;
}

/**
 * Subscription billing, as the ERP keeps it: a change of a subscription is applied to its
 * billing schedule once the ERP knows the customer and the plan (an item), the quantity is a
 * whole number of at least one and the currency is the customer's; once per change key.
 */
export class SubscriptionBilling {
  constructor(private readonly deps: { erp: ErpConnector }) {}

  async apply(change: BillingChange): Promise<{ schedule: BillingScheduleRecord | null; errors: BillingChangeError[] }> {
    if (change.key.trim() === '' || change.key.length > 128) throw badUserInput('input.key', 'must be 1 to 128 characters');
    maxLength('input.subscriptionId', change.subscriptionId, 64);
    maxLength('input.plan', change.sku, 64);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(change.startDate)) throw badUserInput('input.startDate', 'must be a date (YYYY-MM-DD)');
    const { erp } = this.deps;
    const errors: BillingChangeError[] = [];
    const [[customer], [product]] = await Promise.all([erp.customersByIds([change.customerId]), erp.productsBySkus([change.sku])]);
    if (!customer) errors.push({ code: 'UNKNOWN_CUSTOMER', message: `No customer ${change.customerId} in the ERP.`, field: 'customerId' });
    if (!product) errors.push({ code: 'UNKNOWN_PLAN', message: `The plan ${change.sku} is not an item of the ERP.`, field: 'plan' });
    if (!Number.isInteger(change.quantity) || change.quantity < 1)
      errors.push({
        code: 'INVALID_QUANTITY',
        message: `Quantity must be a whole number of at least 1 (got ${change.quantity}).`,
        field: 'quantity',
      });
    if (customer && customer.currency !== change.currency)
      errors.push({
        code: 'CURRENCY_MISMATCH',
        message: `The subscription is in ${change.currency}; customer ${customer.id} is billed in ${customer.currency}.`,
        field: 'currency',
      });
    if (errors.length) return { schedule: null, errors };
    return { schedule: await erp.applyBillingChange(change), errors: [] };
  }
}
