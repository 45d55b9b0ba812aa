import { toDecimal } from '../../../../platform/sql.ts';
import type { ErpConnector, NewReturnLine, OrderLineRecord, ReturnReason, ReturnResolution } from '../connectors/types.ts';

export type ReturnErrorCode =
  | 'INVALID_LINE'
  | 'UNKNOWN_ASSET'
  | 'UNKNOWN_ORDER_LINE'
  | 'NOT_CUSTOMERS_ORDER'
  | 'NOT_CUSTOMERS_ASSET'
  | 'NOT_SHIPPED'
  | 'QUANTITY_EXCEEDS_SHIPPED'
  | 'WARRANTY_EXPIRED'
  | 'INVOICE_NOT_PAID'
  | 'EXCEEDS_APPROVAL_LIMIT';

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

/** How much more the approver may authorize on the case (decimal amounts), and over which window. */
export interface ApprovalRoom {
  limit: string;
  authorizedBefore: string;
  windowHours: number;
}
const WARRANTY_RESOLUTIONS = new Set<ReturnResolution>(['REPLACE', 'REPAIR']);

/**
 * Checks a return against ERP facts before anything is written: every line is the customer's,
 * was shipped and is not returned beyond what was shipped; REPLACE and REPAIR are under warranty
 * on `today`; REFUND has a paid (or credited) invoice; the approver stays within its room.
 * Returns every error found, or the lines to create with their prices and the total.
 */
export async function validateReturn(
  request: { customerId: string; lines: ReturnLineInput[]; resolution: ReturnResolution; approval: ApprovalRoom | null },
  context: { erp: ErpConnector; today: string },
): Promise<{
  errors: ReturnError[];
  lines: NewReturnLine[];
  total: string;
  currency: string;
  /** What the lines asked are worth, when they were valued (also when refused for their value). */
  valued: { amount: string; currency: string } | null;
}> {
  const errors: ReturnError[] = [];
  const fail = (code: ReturnErrorCode, message: string, line: number | null = null) => errors.push({ code, message, line });
  const empty = { errors, lines: [], total: '0.00', currency: 'USD', valued: null };
  const customerId = request.customerId;
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
  const approval = request.approval;
  const before = approval ? Math.round(Number(approval.authorizedBefore) * 100) : 0;
  if (!errors.length && approval && before + cents > Math.round(Number(approval.limit) * 100)) {
    fail(
      'EXCEEDS_APPROVAL_LIMIT',
      `The return is worth ${total}` +
        (before > 0 ? ` and you authorized ${toDecimal(before / 100)} on this case in the last ${approval.windowHours} h` : '') +
        `; an agent may authorize up to ${toDecimal(Number(approval.limit))} per case. Ask a support lead.`,
    );
  }
  const valued = errors.every((error) => error.code === 'EXCEEDS_APPROVAL_LIMIT') ? { amount: total, currency: currency ?? 'USD' } : null;
  return { errors, lines: errors.length ? [] : lines, total, currency: currency ?? 'USD', valued };
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
