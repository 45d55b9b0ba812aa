import type { Identity } from '../../../../platform/identity.ts';
import { toDecimal } from '../../../../platform/sql.ts';
import type { ErpConnector, NewReturnLine, OrderLineRecord, ReturnReason, ReturnResolution } from '../connectors/types.ts';

export type ReturnErrorCode =
  | 'CASE_NOT_FOUND'
  | 'CASE_CLOSED'
  | 'CASE_HAS_NO_CUSTOMER'
  | 'INVALID_LINE'
  | 'UNKNOWN_ASSET'
  | 'UNKNOWN_ORDER_LINE'
  | 'NOT_CUSTOMERS_ORDER'
  | 'NOT_CUSTOMERS_ASSET'
  | 'NOT_SHIPPED'
  | 'QUANTITY_EXCEEDS_SHIPPED'
  | 'WARRANTY_EXPIRED'
  | 'INVOICE_NOT_PAID'
  | 'EXCEEDS_APPROVAL_LIMIT'
  | 'IDEMPOTENCY_KEY_REUSED';

/** A business rule the return breaks: a code, a message an agent can act on, the input line. */
export interface ReturnError {
  code: ReturnErrorCode;
  message: string;
  line: number | null;
}

export interface ReturnLineInput {
  serialNumber?: string | null | undefined;
  orderLine?: { orderNumber: string; sequence: number } | null | undefined;
  quantity: number;
  reason: ReturnReason;
}

/** What the desk says of the case (read through the graph). */
export interface CaseFacts {
  id: string;
  status: string;
  customerId: string | null;
}

const CLOSED = new Set(['SOLVED', 'CLOSED']);
const WARRANTY_RESOLUTIONS = new Set<ReturnResolution>(['REPLACE', 'REPAIR']);

/**
 * Checks a return against ERP facts before anything is written: the case is open and has a
 * customer; every line is that customer's, was shipped and is not returned beyond what was
 * shipped; REPLACE and REPAIR are under warranty on `today`; REFUND has a paid (or credited)
 * invoice; an agent stays within its approval limit. Returns every error found, or the lines
 * to create with their prices and the total.
 */
export async function validateReturn(
  request: { lines: ReturnLineInput[]; resolution: ReturnResolution },
  caseFacts: CaseFacts | null,
  identity: Identity,
  context: {
    erp: ErpConnector;
    today: string;
    agentLimit: number;
    /** What this caller already authorized on this case within the approval window, in cents. */
    authorizedBefore?: { cents: number; windowHours: number };
  },
): Promise<{ errors: ReturnError[]; lines: NewReturnLine[]; total: string; currency: string }> {
  const errors: ReturnError[] = [];
  const fail = (code: ReturnErrorCode, message: string, line: number | null = null) => errors.push({ code, message, line });
  const empty = { errors, lines: [], total: '0.00', currency: 'USD' };

  if (!caseFacts) return (fail('CASE_NOT_FOUND', 'No such case in the support desk.'), empty);
  if (CLOSED.has(caseFacts.status)) {
    return (
      fail('CASE_CLOSED', `Case ${caseFacts.id} is ${caseFacts.status.toLowerCase()}; reopen it before authorizing a return.`),
      empty
    );
  }
  const customerId = caseFacts.customerId;
  if (!customerId) return (fail('CASE_HAS_NO_CUSTOMER', `Case ${caseFacts.id} has no customer; link the organization first.`), empty);
  if (request.lines.length === 0) return (fail('INVALID_LINE', 'A return needs at least one line.'), empty);

  request.lines.forEach((line, i) => {
    if (Boolean(line.serialNumber) === Boolean(line.orderLine))
      fail('INVALID_LINE', 'Give either a serial number or an order line, not both or neither.', i);
    else if (!Number.isInteger(line.quantity) || line.quantity < 1)
      fail('INVALID_LINE', `Quantity must be a whole number of at least 1 (got ${line.quantity}).`, i);
    else if (line.serialNumber && line.quantity !== 1)
      fail('INVALID_LINE', `A serial number is one unit; quantity must be 1 (got ${line.quantity}).`, i);
  });
  if (errors.length) return empty;

  const { erp, today } = context;
  const serials = request.lines.flatMap((line) => (line.serialNumber ? [line.serialNumber] : []));
  const assets = new Map((await erp.assetsBySerialNumbers(serials)).map((asset) => [asset.serialNumber, asset]));
  const orderNumbers = [
    ...new Set([
      ...request.lines.flatMap((line) => (line.orderLine ? [line.orderLine.orderNumber] : [])),
      ...[...assets.values()].map((asset) => asset.orderNumber),
    ]),
  ];
  const [orders, orderLines, invoices] = await Promise.all([
    erp.ordersByNumbers(orderNumbers),
    erp.orderLinesByOrderNumbers(orderNumbers),
    request.resolution === 'REFUND' ? erp.invoicesByOrderNumbers(orderNumbers) : Promise.resolve([]),
  ]);
  const orderByNumber = new Map(orders.map((order) => [order.number, order]));
  const lineOf = (orderNumber: string, match: (line: OrderLineRecord) => boolean) =>
    orderLines.find((line) => line.orderNumber === orderNumber && match(line));
  const skus = [...new Set(orderLines.flatMap((line) => (line.sku ? [line.sku] : [])))];
  const products = new Map((await erp.productsBySkus(skus)).map((product) => [product.sku, product]));
  // A unit is a unit of its order line: returns are counted per order line whichever way they
  // name it, so a unit returned by serial number cannot be returned again by its line, or back.
  const lineOfAsset = (asset: { orderNumber: string; sku: string }) => lineOf(asset.orderNumber, (line) => line.sku === asset.sku);
  const returned = await erp.returnedQuantities({
    serialNumbers: serials,
    orderLines: [
      ...request.lines.flatMap((line) => (line.orderLine ? [line.orderLine] : [])),
      ...[...assets.values()].flatMap((asset) => {
        const line = lineOfAsset(asset);
        return line ? [{ orderNumber: asset.orderNumber, sequence: line.sequence }] : [];
      }),
    ],
  });

  const lines: NewReturnLine[] = [];
  const requestedSoFar = new Map<string, number>();
  let currency: string | null = null;
  request.lines.forEach((input, i) => {
    let orderNumber: string;
    let orderLine: OrderLineRecord | undefined;
    let warrantyEnd: string | null;
    if (input.serialNumber) {
      const asset = assets.get(input.serialNumber);
      if (!asset) return fail('UNKNOWN_ASSET', `Serial number ${input.serialNumber} is not in the ERP's installed base.`, i);
      if (asset.customerId !== customerId)
        return fail('NOT_CUSTOMERS_ASSET', `Unit ${input.serialNumber} does not belong to the case's customer.`, i);
      orderNumber = asset.orderNumber;
      orderLine = lineOfAsset(asset);
      warrantyEnd = asset.warrantyEndDate;
      const unit = `serial:${asset.serialNumber}`;
      const askedUnit = (requestedSoFar.get(unit) ?? 0) + 1;
      requestedSoFar.set(unit, askedUnit);
      if ((returned.bySerialNumber.get(asset.serialNumber) ?? 0) + askedUnit > 1)
        return fail('QUANTITY_EXCEEDS_SHIPPED', `Unit ${asset.serialNumber} is already returned.`, i);
    } else {
      const ref = input.orderLine!;
      const order = orderByNumber.get(ref.orderNumber);
      orderLine = lineOf(ref.orderNumber, (line) => line.sequence === ref.sequence);
      if (!order || !orderLine) return fail('UNKNOWN_ORDER_LINE', `Order ${ref.orderNumber} has no line ${ref.sequence}.`, i);
      if (order.customerId !== customerId)
        return fail('NOT_CUSTOMERS_ORDER', `Order ${ref.orderNumber} is not the case's customer's order.`, i);
      orderNumber = ref.orderNumber;
      const product = orderLine.sku ? products.get(orderLine.sku) : undefined;
      warrantyEnd = orderLine.shipmentDate && product?.warrantyMonths ? addMonths(orderLine.shipmentDate, product.warrantyMonths) : null;
      if (orderLine.shippedQuantity <= 0)
        return fail('NOT_SHIPPED', `Line ${orderLine.sequence} of order ${orderNumber} has not been shipped yet.`, i);
    }
    if (!orderLine || !orderLine.sku) return fail('UNKNOWN_ORDER_LINE', `No order line of ${orderNumber} carries this item.`, i);
    const lineKey = `${orderNumber}#${orderLine.sequence}`;
    const shipped = orderLine.shippedQuantity;
    const returnedBefore = returned.byOrderLine.get(lineKey) ?? 0;
    const counted = `line:${lineKey}`;
    const asked = (requestedSoFar.get(counted) ?? 0) + input.quantity;
    requestedSoFar.set(counted, asked);
    if (returnedBefore + asked > shipped) {
      return fail(
        'QUANTITY_EXCEEDS_SHIPPED',
        `Line ${orderLine.sequence} of order ${orderNumber}: ${shipped} shipped, ${returnedBefore} already returned` +
          `${asked > input.quantity ? `, ${asked - input.quantity} on earlier lines of this return` : ''}: ` +
          `at most ${Math.max(0, shipped - returnedBefore - (asked - input.quantity))} more can be returned.`,
        i,
      );
    }
    if (WARRANTY_RESOLUTIONS.has(request.resolution) && (warrantyEnd === null || warrantyEnd < today)) {
      return fail(
        'WARRANTY_EXPIRED',
        warrantyEnd === null
          ? `${orderLine.sku} carries no warranty; only a refund is possible.`
          : `The warranty ended on ${warrantyEnd}; offer a paid repair or a refund instead.`,
        i,
      );
    }
    let invoiceNumber: string | null = null;
    if (request.resolution === 'REFUND') {
      const settled = invoices.find(
        (invoice) => invoice.orderNumber === orderNumber && (invoice.status === 'PAID' || invoice.status === 'CANCELED'),
      );
      if (!settled) return fail('INVOICE_NOT_PAID', `Order ${orderNumber} has no paid invoice; a refund waits until it is paid.`, i);
      invoiceNumber = settled.number;
    }
    currency ??= orderLine.currency;
    lines.push({
      sku: orderLine.sku,
      quantity: input.quantity,
      unitPrice: orderLine.unitPrice,
      reason: input.reason,
      serialNumber: input.serialNumber ?? null,
      orderNumber,
      orderLineSequence: orderLine.sequence,
      appliesToInvoiceNumber: invoiceNumber,
    });
  });
  const { cents, amount: total } = returnValue(lines);
  const unlimited = identity.roles.some((role) => role === 'support_lead' || role === 'integration');
  const before = context.authorizedBefore?.cents ?? 0;
  if (!errors.length && !unlimited && before + cents > Math.round(context.agentLimit * 100)) {
    fail(
      'EXCEEDS_APPROVAL_LIMIT',
      `The return is worth ${total}` +
        (before > 0
          ? ` and you authorized ${toDecimal(before / 100)} on this case in the last ${context.authorizedBefore!.windowHours} h`
          : '') +
        `; an agent may authorize up to ${toDecimal(context.agentLimit)} per case. Ask a support lead.`,
    );
  }
  return { errors, lines: errors.length ? [] : lines, total, currency: currency ?? 'USD' };
}

/** The value of return lines at their prices: cents (exact) and the decimal amount. */
export function returnValue(lines: readonly { unitPrice: string; quantity: number }[]): { cents: number; amount: string } {
  const cents = lines.reduce((sum, line) => sum + Math.round(Number(line.unitPrice) * 100) * line.quantity, 0);
  return { cents, amount: toDecimal(cents / 100) };
}

function addMonths(date: string, months: number): string {
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCMonth(day.getUTCMonth() + months);
  return day.toISOString().slice(0, 10);
}
