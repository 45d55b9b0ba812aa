import { createHash } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { badUserInput, ConnectorError, ErrorCode } from '../../../../platform/errors.ts';
import type { Identity } from '../../../../platform/identity.ts';
import type { IdempotencyStore } from '../../../../platform/idempotency.ts';
import { auditLogger, type Logger } from '../../../../platform/logger.ts';
import type { Outbox } from '../../../../platform/outbox.ts';
import type { ServiceClient } from '../../../../platform/service-client.ts';
import { isoDate, type Clock } from '../../../../platform/time.ts';
import type { ErpConnector, NewReturnLine, ReturnOrderRecord, ReturnReason, ReturnResolution } from '../connectors/types.ts';
import type { ReturnApprovals } from './approvals.ts';
import { returnValue, validateReturn, type CaseFacts, type ReturnError, type ReturnLineInput } from './validate.ts';

export interface ReturnRequest {
  caseId: string;
  lines: ReturnLineInput[];
  resolution: ReturnResolution;
  idempotencyKey: string;
  note?: string | null | undefined;
}

/** What a key's first request produced, as stored: replays return exactly this. */
export interface StoredOutcome {
  returnNumber: string | null;
  errors: ReturnError[];
}

export interface ReturnOutcome {
  returnOrder: ReturnOrderRecord | null;
  errors: ReturnError[];
}

/** Outbox kinds this process delivers (see outboxHandlers). */
export const OUTBOX_KINDS = { caseUpdate: 'case.update', crmActivity: 'crm.activity' } as const;

const CASE_QUERY = /* GraphQL */ `
  query ReturnCase($id: ID!) {
    case(id: $id) {
      id
      status
      customer {
        id
      }
    }
  }
`;

/**
 * Creating a return authorization from a support case, as one process: claim the caller's
 * idempotency key, read the case through the graph, validate every line on ERP facts, create
 * the return order in the ERP (its external document number derived from the key, so a retry
 * after a timeout finds the order instead of repeating it), then record the outcome and queue
 * the follow-on writes (case note and status, CRM activity) in one transaction of the process
 * store. Business rule failures are results, stored like successes.
 */
export class ReturnsProcess {
  constructor(
    private readonly deps: {
      erp: ErpConnector;
      graph: ServiceClient;
      idempotency: IdempotencyStore<StoredOutcome>;
      outbox: Outbox;
      logger: Logger;
      clock: Clock;
      /** Above this total (everything one agent authorized on one case within the window) an agent needs a lead. */
      agentLimit: number;
      /** What each agent authorized on each case within the approval window. */
      approvals: ReturnApprovals;
      approvalWindowHours: number;
      /** How long a request waits for a concurrent one with the same key: less than the gateway's deadline. */
      waitMs: number;
    },
  ) {}

  /** Validation and creation of one customer's returns, one at a time (see exclusive). */
  private readonly queues = new Map<string, Promise<void>>();

  async create(request: ReturnRequest, identity: Identity, correlationId: string): Promise<ReturnOutcome> {
    const { logger } = this.deps;
    const key = request.idempotencyKey.trim();
    if (key === '' || key.length > 128) throw badUserInput('input.idempotencyKey', 'must be 1 to 128 characters');
    checkTextLengths(request);
    const scope = identity.subject;
    const hash = requestHash(request);
    // The audit trail is kept whatever LOG_LEVEL says.
    const auditLog = auditLogger(logger);
    const audit = (outcome: string, extra: Record<string, unknown> = {}) =>
      auditLog.info(
        {
          audit: true,
          event: 'return_authorization',
          who: identity.subject,
          roles: identity.roles,
          caseId: request.caseId,
          outcome,
          correlationId,
          ...extra,
        },
        'audit',
      );

    const claim = await this.claim(scope, key, hash);
    if (claim.kind === 'mismatch') {
      audit('refused', { code: 'IDEMPOTENCY_KEY_REUSED' });
      return {
        returnOrder: null,
        errors: [
          {
            code: 'IDEMPOTENCY_KEY_REUSED',
            message: 'This idempotency key was already used for a different return; use a new key for a new return.',
            line: null,
          },
        ],
      };
    }
    if (claim.kind === 'done') {
      audit('replayed', { returnNumber: claim.response.returnNumber });
      return this.outcomeOf(claim.response);
    }

    logger.info(
      { event: 'return.requested', caseId: request.caseId, resolution: request.resolution, lines: request.lines.length, correlationId },
      'return requested',
    );
    try {
      // An earlier attempt with this key may have created the order in the ERP and then lost
      // the answer (a timeout after the commit): that order is this request's result.
      const earlier = await this.deps.erp.returnOrderByExternalDocument(externalDocumentNumber(scope, key));
      if (earlier) {
        const lines = await this.deps.erp.returnLinesByReturnNumbers([earlier.number]);
        this.record(
          scope,
          key,
          claim.owner,
          earlier,
          request,
          lines.map((line) => ({ sku: line.sku, quantity: line.quantity, serialNumber: line.serialNumber })),
          returnValue(lines).amount,
          correlationId,
        );
        audit('recovered', { returnNumber: earlier.number });
        return { returnOrder: earlier, errors: [] };
      }
      const caseFacts = await this.readCase(request.caseId, correlationId);
      // What was returned before and what this agent authorized before are read and the order
      // created with no other return of the customer in between: two requests (whatever their
      // keys) cannot both count the same unit or the same room under the limit.
      const authorized = await this.exclusive(caseFacts?.customerId ?? `case:${request.caseId}`, async () => {
        const checked = await validateReturn(request, caseFacts, identity, {
          erp: this.deps.erp,
          today: isoDate(this.deps.clock()),
          agentLimit: this.deps.agentLimit,
          authorizedBefore: {
            cents: this.deps.approvals.authorizedWithinWindow(scope, request.caseId, Date.now()),
            windowHours: this.deps.approvalWindowHours,
          },
        });
        if (checked.errors.length) {
          this.deps.idempotency.complete(scope, key, claim.owner, { returnNumber: null, errors: checked.errors });
          return { checked, returnOrder: null };
        }
        const returnOrder = await this.deps.erp.createReturnOrder({
          externalDocumentNumber: externalDocumentNumber(scope, key),
          customerId: caseFacts!.customerId!,
          caseId: request.caseId,
          resolution: request.resolution,
          currency: checked.currency,
          lines: checked.lines,
        });
        this.record(scope, key, claim.owner, returnOrder, request, checked.lines, checked.total, correlationId);
        return { checked, returnOrder };
      });
      const { checked, returnOrder } = authorized;
      if (!returnOrder) {
        audit('rejected', { codes: checked.errors.map((error) => error.code) });
        return { returnOrder: null, errors: checked.errors };
      }
      const customerId = returnOrder.customerId;
      logger.info(
        {
          event: 'return.authorized',
          caseId: request.caseId,
          returnNumber: returnOrder.number,
          customerId,
          total: checked.total,
          correlationId,
        },
        'return authorized',
      );
      audit('authorized', { returnNumber: returnOrder.number });
      return { returnOrder, errors: [] };
    } catch (error) {
      // Nothing was recorded for the key: a retry runs again (and finds an ERP order that did commit).
      this.deps.idempotency.release(scope, key, claim.owner);
      audit('failed', { error: error instanceof Error ? error.message : String(error) });
      throw error;
    }
  }

  /** Records the key's result and queues the follow-on writes, in one transaction of the process store. */
  private record(
    scope: string,
    key: string,
    owner: string,
    returnOrder: ReturnOrderRecord,
    request: ReturnRequest,
    lines: Pick<NewReturnLine, 'sku' | 'quantity' | 'serialNumber'>[],
    total: string,
    correlationId: string,
  ): void {
    this.deps.outbox.db.transaction(() => {
      // A holder whose lease was taken over still queues the follow-ons (their keys deduplicate);
      // the key's result is the taker's to record, and it finds this same order.
      this.deps.idempotency.complete(scope, key, owner, { returnNumber: returnOrder.number, errors: [] });
      this.deps.approvals.record({
        returnNumber: returnOrder.number,
        approver: scope,
        caseId: request.caseId,
        cents: Math.round(Number(total) * 100),
        at: Date.now(),
      });
      this.enqueueFollowOns(returnOrder, request, lines, total, correlationId);
    })();
  }

  /**
   * Claims the key, waiting while a concurrent request with it is in progress, but no longer than
   * waitMs (less than the gateway's deadline, so the client hears IDEMPOTENCY_KEY_IN_PROGRESS
   * and when to retry, not a timeout).
   */
  private async claim(scope: string, key: string, hash: string) {
    const deadline = Date.now() + this.deps.waitMs;
    for (;;) {
      const claim = this.deps.idempotency.claim(scope, key, hash);
      if (claim.kind !== 'in_progress') return claim;
      const left = deadline - Date.now();
      if (left <= 0) {
        const retryAfterMs = Math.max(250, claim.retryAfterMs);
        throw new GraphQLError(`A request with this idempotency key is still in progress; retry it in ${retryAfterMs} ms`, {
          extensions: { code: 'IDEMPOTENCY_KEY_IN_PROGRESS', retryAfterMs },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, left)));
    }
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

  private async outcomeOf(stored: StoredOutcome): Promise<ReturnOutcome> {
    if (!stored.returnNumber) return { returnOrder: null, errors: stored.errors };
    const [returnOrder] = await this.deps.erp.returnOrdersByNumbers([stored.returnNumber]);
    return { returnOrder: returnOrder ?? null, errors: stored.errors };
  }

  private async readCase(caseId: string, correlationId: string): Promise<CaseFacts | null> {
    const reply = await this.deps.graph.request<{ case: { id: string; status: string; customer: { id: string } | null } | null }>(
      CASE_QUERY,
      { id: caseId },
      correlationId,
    );
    const refusal = reply.errors?.find((error) => error.extensions?.code === 'BAD_USER_INPUT');
    if (refusal)
      throw new GraphQLError(`Argument "input.caseId" ${refusal.message.replace(/^Argument "id" /, '')}`, {
        extensions: { code: ErrorCode.BadUserInput },
      });
    if (reply.errors?.length)
      throw new ConnectorError('support', `reading case ${caseId} failed: ${reply.errors.map((error) => error.message).join('; ')}`);
    const found = reply.data?.case;
    return found ? { id: found.id, status: found.status, customerId: found.customer?.id ?? null } : null;
  }

  private enqueueFollowOns(
    returnOrder: ReturnOrderRecord,
    request: ReturnRequest,
    lines: Pick<NewReturnLine, 'sku' | 'quantity' | 'serialNumber'>[],
    total: string,
    correlationId: string,
  ): void {
    const items = lines.map((line) => `${line.quantity} × ${line.sku}${line.serialNumber ? ` (${line.serialNumber})` : ''}`).join(', ');
    this.deps.outbox.enqueue({
      dedupeKey: `${returnOrder.number}:case-update`,
      kind: OUTBOX_KINDS.caseUpdate,
      correlationId,
      payload: {
        caseId: request.caseId,
        idempotencyKey: `${returnOrder.number}:case-update`,
        status: 'PENDING',
        internalNote:
          `Return authorization ${returnOrder.number} created (${request.resolution.toLowerCase()}): ${items}; ` +
          `value ${total} ${returnOrder.currency}.${request.note ? ` Note: ${request.note}` : ''}`,
      },
    });
    this.deps.outbox.enqueue({
      dedupeKey: `${returnOrder.number}:crm-activity`,
      kind: OUTBOX_KINDS.crmActivity,
      correlationId,
      payload: {
        customerId: returnOrder.customerId,
        idempotencyKey: `${returnOrder.number}:crm-activity`,
        subject: `Return ${returnOrder.number} authorized (${request.resolution.toLowerCase()})`,
        description: `Support case ${request.caseId}: ${items}; value ${total} ${returnOrder.currency}.`,
        activityDate: isoDate(this.deps.clock()),
      },
    });
  }
}

/** Longest free text accepted in a return's input, per field. */
export const TEXT_LIMITS = { note: 2_000, caseId: 64, serialNumber: 64, orderNumber: 64, lines: 200 } as const;

/** Refuses over-long free text and too many lines as BAD_USER_INPUT naming the field. */
function checkTextLengths(request: ReturnRequest): void {
  const tooLong = (field: string, value: string | null | undefined, max: number) => {
    if (value != null && value.length > max) throw badUserInput(field, `must be at most ${max} characters (got ${value.length})`);
  };
  tooLong('input.caseId', request.caseId, TEXT_LIMITS.caseId);
  tooLong('input.note', request.note, TEXT_LIMITS.note);
  if (request.lines.length > TEXT_LIMITS.lines)
    throw badUserInput('input.lines', `must hold at most ${TEXT_LIMITS.lines} lines (got ${request.lines.length})`);
  request.lines.forEach((line, i) => {
    tooLong(`input.lines[${i}].serialNumber`, line.serialNumber, TEXT_LIMITS.serialNumber);
    tooLong(`input.lines[${i}].orderLine.orderNumber`, line.orderLine?.orderNumber, TEXT_LIMITS.orderNumber);
  });
}

/** The same input (whatever the order of its fields) hashes the same; the key is not part of it. */
export function requestHash(request: ReturnRequest): string {
  const canonical = {
    caseId: request.caseId.trim(),
    resolution: request.resolution,
    note: request.note ?? null,
    lines: request.lines.map((line) => ({
      serialNumber: line.serialNumber ?? null,
      orderLine: line.orderLine ? { orderNumber: line.orderLine.orderNumber, sequence: line.orderLine.sequence } : null,
      quantity: line.quantity,
      reason: line.reason,
    })),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** Business Central's external document number holds 35 characters: a digest of caller and key. */
export function externalDocumentNumber(scope: string, key: string): string {
  return `CRA-${createHash('sha256').update(`${scope}\u0000${key}`).digest('hex').slice(0, 31)}`;
}

export type { ReturnReason };
