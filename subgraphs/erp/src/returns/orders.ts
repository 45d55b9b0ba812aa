import { createHash } from 'node:crypto';
import { maxItems, maxLength } from '../../../../platform/validate.ts';
import { isoDate, type Clock } from '../../../../platform/time.ts';
import type { ErpConnector, ReturnOrderRecord, ReturnResolution } from '../connectors/types.ts';
import { returnValue, validateReturn, type ApprovalRoom, type ReturnError, type ReturnLineInput } from './validate.ts';

/** What the return process asks of the ERP: one return order, for one customer's case. */
export interface ReturnOrderRequest {
  /** The process's key for this order: the same reference finds the order made before. */
  reference: string;
  caseId: string;
  customerId: string;
  resolution: ReturnResolution;
  lines: ReturnLineInput[];
  /** What the approver may still authorize on the case; null: no limit. */
  approval: ApprovalRoom | null;
}

export interface ReturnOrderOutcome {
  returnOrder: ReturnOrderRecord | null;
  errors: ReturnError[];
  /** The value of the order (or of what was asked, when it was refused for its value). */
  total: { amount: string; currency: string } | null;
}

/** Longest text accepted per field, and most lines. */
export const TEXT_LIMITS = { reference: 128, caseId: 64, customerId: 64, serialNumber: 64, orderNumber: 64, lines: 200 } as const;

/**
 * Return orders, as the ERP writes them: checked against ERP facts (the customer's units and
 * order lines, shipped, not returned before, warranty, paid invoice, the approver's room), then
 * created with an external document number derived from the caller's reference, so a retry
 * after a timeout finds the order instead of making a second one. The returns of one customer
 * are checked and created one at a time in this process; the process layer also holds a lock
 * per customer across its replicas.
 */
export class ReturnOrders {
  private readonly queues = new Map<string, Promise<void>>();

  constructor(private readonly deps: { erp: ErpConnector; clock: Clock }) {}

  async create(request: ReturnOrderRequest): Promise<ReturnOrderOutcome> {
    checkTextLengths(request);
    const { erp } = this.deps;
    const documentNumber = externalDocumentNumber(request.reference);
    return this.exclusive(request.customerId, async () => {
      // An earlier call with this reference may have created the order and lost the answer.
      const earlier = await erp.returnOrderByExternalDocument(documentNumber);
      if (earlier) return { returnOrder: earlier, errors: [], total: await this.totalOf(earlier) };
      const checked = await validateReturn(request, { erp, today: isoDate(this.deps.clock()) });
      if (checked.errors.length) return { returnOrder: null, errors: checked.errors, total: checked.valued };
      const returnOrder = await erp.createReturnOrder({
        externalDocumentNumber: documentNumber,
        customerId: request.customerId,
        caseId: request.caseId,
        resolution: request.resolution,
        currency: checked.currency,
        lines: checked.lines,
      });
      return { returnOrder, errors: [], total: { amount: checked.total, currency: checked.currency } };
    });
  }

  private async totalOf(order: ReturnOrderRecord) {
    const lines = await this.deps.erp.returnLinesByReturnNumbers([order.number]);
    return { amount: returnValue(lines).amount, currency: order.currency };
  }

  /** Runs `work` after every earlier work with the same key has finished. */
  private async exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(key) ?? Promise.resolve();
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const mine = before.then(() => done);
    this.queues.set(key, mine);
    await before;
    try {
      return await work();
    } finally {
      finish();
      if (this.queues.get(key) === mine) this.queues.delete(key);
    }
  }
}

/** Refuses over-long text and too many lines as BAD_USER_INPUT naming the field. */
function checkTextLengths(request: ReturnOrderRequest): void {
  maxLength('input.reference', request.reference, TEXT_LIMITS.reference);
  maxLength('input.caseId', request.caseId, TEXT_LIMITS.caseId);
  maxLength('input.customerId', request.customerId, TEXT_LIMITS.customerId);
  maxItems('input.lines', request.lines, TEXT_LIMITS.lines);
  request.lines.forEach((line, i) => {
    maxLength(`input.lines[${i}].serialNumber`, line.serialNumber, TEXT_LIMITS.serialNumber);
    maxLength(`input.lines[${i}].orderLine.orderNumber`, line.orderLine?.orderNumber, TEXT_LIMITS.orderNumber);
  });
}

/** Business Central's external document number holds 35 characters: a digest of the reference. */
export function externalDocumentNumber(reference: string): string {
  return `CRA-${createHash('sha256').update(reference).digest('hex').slice(0, 31)}`;
}
