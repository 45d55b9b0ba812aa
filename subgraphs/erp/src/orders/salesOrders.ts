import { createHash } from 'node:crypto';
import { badUserInput } from '../../../../platform/errors.ts';
import { toDecimal } from '../../../../platform/sql.ts';
import { isoDate, type Clock } from '../../../../platform/time.ts';
import { maxItems, maxLength } from '../../../../platform/validate.ts';
import type { ErpConnector, NewSalesOrderLine, OrderRecord } from '../connectors/types.ts';

export type SalesOrderErrorCode =
  | 'UNKNOWN_CUSTOMER'
  | 'CUSTOMER_ON_CREDIT_HOLD'
  | 'NO_PAYMENT_TERMS'
  | 'NO_TAX_AREA'
  | 'CURRENCY_MISMATCH'
  | 'CREDIT_LIMIT_EXCEEDED'
  | 'INVALID_LINE'
  | 'UNKNOWN_PRODUCT'
  | 'INSUFFICIENT_STOCK';

/** A rule of the ERP's facts an order breaks: a code, a message a rep can act on, the input line. */
export interface SalesOrderError {
  code: SalesOrderErrorCode;
  message: string;
  line: number | null;
}

export interface SalesOrderRequest {
  /** The caller's key for this order: the same reference finds the order made before. */
  reference: string;
  customerId: string;
  /** The currency the order was sold in; null: the customer's. */
  currency: string | null;
  lines: { sku: string; quantity: number; unitPrice: string; description: string | null }[];
}

export interface SalesOrderOutcome {
  order: OrderRecord | null;
  errors: SalesOrderError[];
  /** Whether this call created the order (false: found, made by an earlier call with the reference). */
  created: boolean;
}

/** Days from the order to the date promised to the customer when every line is in stock. */
export const SHIP_LEAD_DAYS = 3;

/** Business Central's sales line Description holds 100 characters. */
export const SALES_ORDER_LIMITS = { reference: 128, sku: 64, description: 100, lines: 200 } as const;

/**
 * Sales orders, as the ERP writes them: checked against ERP facts (the customer exists, is not
 * blocked, has payment terms and a tax area, stays within its credit limit; every line's item
 * exists and is in stock), then created with an external document number derived from the
 * caller's reference, so a retry after a timeout finds the order instead of making a second.
 */
export class SalesOrders {
  constructor(private readonly deps: { erp: ErpConnector; clock: Clock }) {}

  async create(request: SalesOrderRequest): Promise<SalesOrderOutcome> {
    checkLimits(request);
    const { erp } = this.deps;
    const documentNumber = salesOrderDocumentNumber(request.reference);
    const earlier = await erp.salesOrderByExternalDocument(documentNumber);
    if (earlier) return { order: earlier, errors: [], created: false };
    const errors: SalesOrderError[] = [];
    const fail = (code: SalesOrderErrorCode, message: string, line: number | null = null) => errors.push({ code, message, line });

    const [customer] = await erp.customersByIds([request.customerId]);
    if (!customer)
      return {
        order: null,
        errors: [{ code: 'UNKNOWN_CUSTOMER', message: `No customer ${request.customerId} in the ERP.`, line: null }],
        created: false,
      };
    if (customer.creditHold)
      fail('CUSTOMER_ON_CREDIT_HOLD', `Customer ${customer.id} is blocked in the ERP (credit hold); finance must release it.`);
    if (!customer.paymentTerms) fail('NO_PAYMENT_TERMS', `Customer ${customer.id} has no payment terms; finance must set them.`);
    if (!customer.taxArea) fail('NO_TAX_AREA', `Customer ${customer.id} has no tax area; the order cannot be taxed.`);
    if (request.currency && request.currency !== customer.currency)
      fail('CURRENCY_MISMATCH', `The order is in ${request.currency}; customer ${customer.id} is billed in ${customer.currency}.`);
    if (request.lines.length === 0) fail('INVALID_LINE', 'An order needs at least one line.');

    const skus = [...new Set(request.lines.map((line) => line.sku))];
    const [products, onHand] = await Promise.all([erp.productsBySkus(skus), erp.availableQuantities(skus)]);
    const productOf = new Map(products.map((product) => [product.sku, product]));
    const asked = new Map<string, number>();
    request.lines.forEach((line, i) => {
      if (!Number.isInteger(line.quantity) || line.quantity < 1)
        return fail('INVALID_LINE', `Quantity must be a whole number of at least 1 (got ${line.quantity}).`, i);
      if (!/^\d+(\.\d{1,2})?$/.test(line.unitPrice))
        return fail('INVALID_LINE', `The unit price must be an amount of 0 or more (got ${line.unitPrice}).`, i);
      if (!productOf.has(line.sku)) return fail('UNKNOWN_PRODUCT', `Item ${line.sku} is not in the ERP.`, i);
      const total = (asked.get(line.sku) ?? 0) + line.quantity;
      asked.set(line.sku, total);
      const available = onHand.get(line.sku) ?? 0;
      if (total > available) fail('INSUFFICIENT_STOCK', `Item ${line.sku}: ${total} ordered, ${available} on hand.`, i);
    });
    const cents = request.lines.reduce((sum, line) => sum + Math.round(Number(line.unitPrice) * 100) * line.quantity, 0);
    const limit = Math.round(Number(customer.creditLimit) * 100);
    const balance = Math.round(Number(customer.balanceDue) * 100);
    // A credit limit of 0 is no limit, as in Business Central.
    if (!errors.length && limit > 0 && balance + cents > limit)
      fail(
        'CREDIT_LIMIT_EXCEEDED',
        `The order is worth ${toDecimal(cents / 100)} and customer ${customer.id} owes ${customer.balanceDue}; its credit limit is ${customer.creditLimit}.`,
      );
    if (errors.length) return { order: null, errors, created: false };

    const shipDate = new Date(this.deps.clock().getTime());
    shipDate.setUTCDate(shipDate.getUTCDate() + SHIP_LEAD_DAYS);
    const lines: NewSalesOrderLine[] = request.lines.map((line) => ({
      sku: line.sku,
      quantity: line.quantity,
      unitPrice: toDecimal(Number(line.unitPrice)),
      description: line.description ?? productOf.get(line.sku)?.name ?? null,
    }));
    const order = await erp.createSalesOrder({
      externalDocumentNumber: documentNumber,
      customerId: customer.id,
      currency: customer.currency,
      requestedDeliveryDate: isoDate(shipDate),
      lines,
    });
    return { order, errors: [], created: true };
  }

  /** Cancels an order nothing of which has shipped. */
  cancel(number: string): Promise<'cancelled' | 'not_found' | 'shipped'> {
    return this.deps.erp.cancelSalesOrder(number);
  }
}

function checkLimits(request: SalesOrderRequest): void {
  if (request.reference.trim() === '') throw badUserInput('input.reference', `must be 1 to ${SALES_ORDER_LIMITS.reference} characters`);
  maxLength('input.reference', request.reference, SALES_ORDER_LIMITS.reference);
  maxItems('input.lines', request.lines, SALES_ORDER_LIMITS.lines);
  request.lines.forEach((line, i) => {
    maxLength(`input.lines[${i}].sku`, line.sku, SALES_ORDER_LIMITS.sku);
    maxLength(`input.lines[${i}].description`, line.description, SALES_ORDER_LIMITS.description);
  });
}

/** Business Central's external document number holds 35 characters (upper-cased): a digest of the reference. */
export function salesOrderDocumentNumber(reference: string): string {
  return `CSO-${createHash('sha256').update(reference).digest('hex').slice(0, 31).toUpperCase()}`;
}
