import { badUserInput } from '../../../platform/errors.ts';
import type { Identity } from '../../../platform/identity.ts';
import { maxItems, maxLength } from '../../../platform/validate.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { ServiceClient } from '../../../platform/service-client.ts';
import { toDecimal } from '../../../platform/sql.ts';
import { isoDate, type Clock } from '../../../platform/time.ts';
import { endWorkflow, type StepContext, type WorkflowDefinition, type WorkflowEngine } from '../../../platform/workflow/engine.ts';
import type { ReturnApprovals } from './approvals.ts';
import { dataOf, readBeforeStart } from './graph.ts';
import { auditedOutputOf, requestAudit, scopedKey, startOnce } from './requests.ts';

export const RETURN_WORKFLOW = 'return-authorization';
/** The steps of a return, in order: the ERP's return order, then the desk's and the CRM's records of it. */
export const RETURN_STEPS = { order: 'erp-return-order', caseNote: 'desk-case-note', activity: 'crm-activity' } as const;

export type ReturnResolution = 'REPLACE' | 'REPAIR' | 'REFUND';

export interface ReturnLineInput {
  serialNumber: string | null;
  orderLine: { orderNumber: string; sequence: number } | null;
  quantity: number;
  reason: string;
}

/** What an agent asks: a return for a support case. */
export interface ReturnRequest {
  caseId: string;
  lines: ReturnLineInput[];
  resolution: ReturnResolution;
  note: string | null;
}

/** What the desk said of the case when the return was asked. */
export interface CaseFacts {
  id: string;
  status: string;
  customerId: string | null;
}

/** A business rule the return breaks: a code, a message an agent can act on, the input line. */
export interface ReturnError {
  code: string;
  message: string;
  line: number | null;
}

/** An instance's input: the request, the case as it was read, and who asked (their limit applies). */
export interface ReturnInput {
  request: ReturnRequest;
  case: CaseFacts | null;
  requestedBy: { subject: string; roles: string[] };
}

/** What the ERP step gave: the return order, or why there is none. */
export interface ReturnOrderOutput {
  returnNumber: string | null;
  customerId: string | null;
  errors: ReturnError[];
  total: string | null;
  currency: string | null;
  /** The returned items, as the case note and the CRM activity name them. */
  items: string | null;
}

/** What an agent hears: the return order's number, or the business errors, and the workflow. */
export interface ReturnOutcome {
  returnNumber: string | null;
  errors: ReturnError[];
  workflowId: string | null;
}

/** Longest free text accepted in a return's input, per field. */
export const TEXT_LIMITS = { idempotencyKey: 128, note: 2_000, caseId: 64, serialNumber: 64, orderNumber: 64, lines: 200 } as const;

const CLOSED = new Set(['SOLVED', 'CLOSED']);
/** Roles that authorize a return of any value. */
const UNLIMITED = new Set(['support_lead', 'integration']);

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

const CREATE_RETURN_ORDER = /* GraphQL */ `
  mutation CreateReturnOrder($input: CreateReturnOrderInput!) {
    createReturnOrder(input: $input) {
      returnAuthorization {
        number
        lines {
          quantity
          serialNumber
          product {
            sku
          }
        }
      }
      errors {
        code
        message
        line
      }
      total {
        amount
        currency
      }
    }
  }
`;

const RECORD_CASE_UPDATE = /* GraphQL */ `
  mutation RecordCaseUpdate($input: RecordCaseUpdateInput!) {
    recordCaseUpdate(input: $input) {
      id
      status
    }
  }
`;

const LOG_CUSTOMER_ACTIVITY = /* GraphQL */ `
  mutation LogCustomerActivity($input: LogCustomerActivityInput!) {
    logCustomerActivity(input: $input) {
      id
    }
  }
`;

export interface ReturnDeps {
  readonly graph: ServiceClient;
  readonly approvals: Pick<ReturnApprovals, 'authorizedWithinWindow' | 'record'>;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Largest total a support agent may authorize alone on one case within the window. */
  readonly agentLimit: number;
  readonly agentLimitWindowHours: number;
}

/** Why the case itself rules a return out, if it does. */
function caseErrors(facts: CaseFacts | null): ReturnError[] {
  if (!facts) return [{ code: 'CASE_NOT_FOUND', message: 'No such case in the support desk.', line: null }];
  if (CLOSED.has(facts.status))
    return [
      {
        code: 'CASE_CLOSED',
        message: `Case ${facts.id} is ${facts.status.toLowerCase()}; reopen it before authorizing a return.`,
        line: null,
      },
    ];
  if (!facts.customerId)
    return [{ code: 'CASE_HAS_NO_CUSTOMER', message: `Case ${facts.id} has no customer; link the organization first.`, line: null }];
  return [];
}

/**
 * The return workflow: the ERP's return order (checked on the case's facts here and on ERP
 * facts by the ERP, under a lock per customer so two returns cannot both count one unit or one
 * agent's room), then the case's internal note and status, then the CRM activity. Each write
 * carries its step's key, so a retried or taken-over step changes nothing twice; an outage of
 * the desk or the CRM delays its step, never the return order, and a step that keeps failing is
 * parked for an operator (the order stands: nothing is undone).
 */
export function returnWorkflow(deps: ReturnDeps): WorkflowDefinition<ReturnInput> {
  const { graph } = deps;
  const orderOf = (context: StepContext<ReturnInput>) => context.results[RETURN_STEPS.order] as ReturnOrderOutput;
  return {
    type: RETURN_WORKFLOW,
    customerOf: (input) => input.case?.customerId ?? null,
    steps: [
      {
        name: RETURN_STEPS.order,
        // Soon again at first: the agent waits for this step's answer.
        retry: { baseDelayMs: 200 },
        run: async (context) => {
          const { request, requestedBy } = context.input;
          const refused = caseErrors(context.input.case);
          if (refused.length) return endWorkflow(rejected(refused), `refused: ${refused.map((error) => error.code).join(', ')}`);
          const customerId = context.input.case!.customerId!;
          return context.exclusive(`returns:${customerId}`, async () => {
            const unlimited = requestedBy.roles.some((role) => UNLIMITED.has(role));
            const before = unlimited ? 0 : await deps.approvals.authorizedWithinWindow(requestedBy.subject, request.caseId, Date.now());
            const reply = await graph.request<{ createReturnOrder: CreateReturnOrderPayload }>(
              CREATE_RETURN_ORDER,
              {
                input: {
                  reference: context.instanceId,
                  caseId: request.caseId,
                  customerId,
                  resolution: request.resolution,
                  lines: request.lines,
                  approval: unlimited
                    ? null
                    : {
                        limit: toDecimal(deps.agentLimit),
                        authorizedBefore: toDecimal(before / 100),
                        windowHours: deps.agentLimitWindowHours,
                      },
                },
              },
              context.correlationId,
            );
            const payload = dataOf(reply, 'createReturnOrder').createReturnOrder;
            if (payload.errors.length)
              return endWorkflow(rejected(payload.errors), `refused by the ERP: ${payload.errors.map((error) => error.code).join(', ')}`);
            const order = payload.returnAuthorization;
            if (!order) throw new Error('createReturnOrder: neither a return order nor errors');
            const total = payload.total?.amount ?? '0.00';
            await deps.approvals.record({
              returnNumber: order.number,
              approver: requestedBy.subject,
              caseId: request.caseId,
              cents: Math.round(Number(total) * 100),
              at: Date.now(),
            });
            const items = order.lines
              .map((line) => `${line.quantity} × ${line.product?.sku ?? '?'}${line.serialNumber ? ` (${line.serialNumber})` : ''}`)
              .join(', ');
            deps.logger.info(
              {
                event: 'return.authorized',
                caseId: request.caseId,
                returnNumber: order.number,
                customerId,
                total,
                workflowId: context.instanceId,
                correlationId: context.correlationId,
              },
              'return authorized',
            );
            context.emit({
              type: 'concord.return.authorized',
              subject: `return/${order.number}`,
              data: {
                returnNumber: order.number,
                caseId: request.caseId,
                customerId,
                resolution: request.resolution,
                total: payload.total?.amount ?? null,
                currency: payload.total?.currency ?? null,
              },
            });
            const output: ReturnOrderOutput = {
              returnNumber: order.number,
              customerId,
              errors: [],
              total,
              currency: payload.total?.currency ?? null,
              items,
            };
            return output;
          });
        },
      },
      {
        name: RETURN_STEPS.caseNote,
        run: async (context) => {
          const order = orderOf(context);
          const { request } = context.input;
          const reply = await graph.request<{ recordCaseUpdate: { id: string } | null }>(
            RECORD_CASE_UPDATE,
            {
              input: {
                caseId: request.caseId,
                idempotencyKey: context.idempotencyKey,
                status: 'PENDING',
                internalNote:
                  `Return authorization ${order.returnNumber} created (${request.resolution.toLowerCase()}): ${order.items}; ` +
                  `value ${order.total} ${order.currency}.${request.note ? ` Note: ${request.note}` : ''}`,
              },
            },
            context.correlationId,
          );
          if (!dataOf(reply, 'recordCaseUpdate').recordCaseUpdate)
            throw new Error(`recordCaseUpdate: case ${request.caseId} does not exist`);
          return null;
        },
      },
      {
        name: RETURN_STEPS.activity,
        run: async (context) => {
          const order = orderOf(context);
          const { request } = context.input;
          const reply = await graph.request<{ logCustomerActivity: { id: string } | null }>(
            LOG_CUSTOMER_ACTIVITY,
            {
              input: {
                customerId: order.customerId,
                idempotencyKey: context.idempotencyKey,
                subject: `Return ${order.returnNumber} authorized (${request.resolution.toLowerCase()})`,
                description: `Support case ${request.caseId}: ${order.items}; value ${order.total} ${order.currency}.`,
                activityDate: isoDate(deps.clock()),
              },
            },
            context.correlationId,
          );
          if (!dataOf(reply, 'logCustomerActivity').logCustomerActivity)
            throw new Error(`logCustomerActivity: customer ${order.customerId} has no CRM account`);
          return null;
        },
      },
    ],
  };
}

interface CreateReturnOrderPayload {
  returnAuthorization: {
    number: string;
    lines: { quantity: number; serialNumber: string | null; product: { sku: string } | null }[];
  } | null;
  errors: ReturnError[];
  total: { amount: string; currency: string } | null;
}

const rejected = (errors: ReturnError[]): ReturnOrderOutput => ({
  returnNumber: null,
  customerId: null,
  errors,
  total: null,
  currency: null,
  items: null,
});

/**
 * What agents call: authorize a return for a case. The caller's key (scoped to the caller)
 * starts one workflow however often the request is sent, and every sending waits (less than
 * the gateway's deadline) for the ERP step's answer: the return order's number, or the business
 * errors, which an agent can act on. The desk's and the CRM's records follow in the workflow.
 */
export class ReturnRequests {
  constructor(
    private readonly deps: {
      engine: WorkflowEngine;
      graph: ServiceClient;
      logger: Logger;
      /** How long a request waits for the ERP step: less than the gateway's deadline. */
      waitMs: number;
    },
  ) {}

  async create(input: ReturnRequest & { idempotencyKey: string }, identity: Identity, correlationId: string): Promise<ReturnOutcome> {
    const { engine, logger } = this.deps;
    const since = Date.now();
    const key = input.idempotencyKey.trim();
    if (key === '' || key.length > TEXT_LIMITS.idempotencyKey)
      throw badUserInput('input.idempotencyKey', `must be 1 to ${TEXT_LIMITS.idempotencyKey} characters`);
    const request: ReturnRequest = {
      caseId: input.caseId.trim(),
      resolution: input.resolution,
      note: input.note ?? null,
      lines: input.lines.map((line) => ({
        serialNumber: line.serialNumber ?? null,
        orderLine: line.orderLine ? { orderNumber: line.orderLine.orderNumber, sequence: line.orderLine.sequence } : null,
        quantity: line.quantity,
        reason: line.reason,
      })),
    };
    checkTextLengths(request);
    const audit = requestAudit(logger, 'return_authorization', identity, correlationId, { caseId: request.caseId });
    const reused = (): ReturnOutcome => {
      audit('refused', { code: 'IDEMPOTENCY_KEY_REUSED' });
      return {
        returnNumber: null,
        workflowId: null,
        errors: [
          {
            code: 'IDEMPOTENCY_KEY_REUSED',
            message: 'This idempotency key was already used for a different return; use a new key for a new return.',
            line: null,
          },
        ],
      };
    };

    const started = await startOnce<ReturnInput>(
      engine,
      RETURN_WORKFLOW,
      { key: scopedKey(identity, key), fingerprint: request, correlationId },
      async () => ({
        input: {
          request,
          case: await this.readCase(request.caseId, correlationId),
          requestedBy: { subject: identity.subject, roles: [...identity.roles] },
        },
      }),
    );
    if (started.kind === 'reused') return reused();
    const replay = started.kind === 'replayed';
    if (!replay)
      logger.info(
        {
          event: 'return.requested',
          caseId: request.caseId,
          resolution: request.resolution,
          lines: request.lines.length,
          workflowId: started.instance.id,
          correlationId,
        },
        'return requested',
      );
    const { output, instance } = await auditedOutputOf<ReturnOrderOutput>(
      audit,
      engine,
      started.instance,
      RETURN_STEPS.order,
      since,
      this.deps.waitMs,
      'The return',
    );
    if (output.returnNumber) audit(replay ? 'replayed' : 'authorized', { returnNumber: output.returnNumber, workflowId: instance.id });
    else audit(replay ? 'replayed' : 'rejected', { codes: output.errors.map((error) => error.code), workflowId: instance.id });
    return { returnNumber: output.returnNumber, errors: output.errors, workflowId: instance.id };
  }

  /** The case as the desk has it (BAD_USER_INPUT for a malformed id; the desk named when it is down). */
  private async readCase(caseId: string, correlationId: string): Promise<CaseFacts | null> {
    const data = await readBeforeStart<{ case: { id: string; status: string; customer: { id: string } | null } | null }>(this.deps.graph, {
      query: CASE_QUERY,
      id: caseId,
      correlationId,
      argument: 'input.caseId',
      system: 'support',
      what: 'case',
    });
    const found = data?.case;
    return found ? { id: found.id, status: found.status, customerId: found.customer?.id ?? null } : null;
  }
}

/** Refuses over-long free text and too many lines as BAD_USER_INPUT naming the field. */
function checkTextLengths(request: ReturnRequest): void {
  maxLength('input.caseId', request.caseId, TEXT_LIMITS.caseId);
  maxLength('input.note', request.note, TEXT_LIMITS.note);
  maxItems('input.lines', request.lines, TEXT_LIMITS.lines);
  request.lines.forEach((line, i) => {
    maxLength(`input.lines[${i}].serialNumber`, line.serialNumber, TEXT_LIMITS.serialNumber);
    maxLength(`input.lines[${i}].orderLine.orderNumber`, line.orderLine?.orderNumber, TEXT_LIMITS.orderNumber);
  });
}
