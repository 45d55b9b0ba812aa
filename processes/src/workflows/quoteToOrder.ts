import type { Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { ServiceClient } from '../../../platform/service-client.ts';
import { endWorkflow, PermanentStepError, type WorkflowDefinition, type WorkflowEngine } from '../../../platform/workflow/engine.ts';
import { requireId, requireKey } from '../../../platform/validate.ts';
import { dataOf, readBeforeStart } from './graph.ts';
import { auditedOutputOf, requestAudit, scopedKey, startOnce } from './requests.ts';

export const QUOTE_TO_ORDER_WORKFLOW = 'quote-to-order';
/** The steps, in order: the ERP's sales order, then the CRM's and the desk's records of it. */
export const QUOTE_TO_ORDER_STEPS = {
  order: 'erp-sales-order',
  confirmation: 'crm-order-confirmation',
  installedBase: 'desk-installed-base',
} as const;

/** The opportunity as the CRM had it when the order was asked. */
export interface OpportunityFacts {
  id: string;
  name: string | null;
  stage: string | null;
  won: boolean;
  customerId: string | null;
  currency: string | null;
  orderNumber: string | null;
  lines: { sku: string; name: string | null; quantity: number; unitPrice: string }[];
}

export interface QuoteToOrderInput {
  opportunity: OpportunityFacts;
  requestedBy: { subject: string; roles: string[] };
}

/** A business rule the order breaks: a code, a message a rep can act on, the opportunity's line. */
export interface OrderError {
  code: string;
  message: string;
  line: number | null;
}

/** What the ERP step gave: the sales order, or why there is none. */
export interface SalesOrderOutput {
  orderNumber: string | null;
  /** Whether this workflow's call made the order (only then does undoing it cancel the order). */
  created?: boolean;
  status: string | null;
  expectedShipDate: string | null;
  customerId: string | null;
  items: { sku: string; name: string | null; quantity: number; warrantyMonths: number | null }[];
  errors: OrderError[];
}

export interface QuoteToOrderOutcome {
  orderNumber: string | null;
  errors: OrderError[];
  workflowId: string | null;
}

const OPPORTUNITY_QUERY = /* GraphQL */ `
  query QuoteOpportunity($id: ID!) {
    opportunity(id: $id) {
      id
      name
      stage
      won
      currency
      customer {
        id
      }
      order {
        number
      }
      lines {
        sku
        name
        quantity
        unitPrice
      }
    }
  }
`;

const CREATE_SALES_ORDER = /* GraphQL */ `
  mutation CreateSalesOrder($input: CreateSalesOrderInput!) {
    createSalesOrder(input: $input) {
      order {
        number
        status
        requestedDeliveryDate
        lines {
          quantity
          product {
            sku
            name
            warrantyMonths
          }
        }
      }
      errors {
        code
        message
        line
      }
      created
    }
  }
`;

const CANCEL_SALES_ORDER = /* GraphQL */ `
  mutation CancelSalesOrder($input: CancelSalesOrderInput!) {
    cancelSalesOrder(input: $input) {
      number
      outcome
    }
  }
`;

const RECORD_OPPORTUNITY_ORDER = /* GraphQL */ `
  mutation RecordOpportunityOrder($input: RecordOpportunityOrderInput!) {
    recordOpportunityOrder(input: $input) {
      id
    }
  }
`;

const RECORD_INSTALLED_BASE = /* GraphQL */ `
  mutation RecordInstalledBase($input: RecordInstalledBaseInput!) {
    recordInstalledBase(input: $input) {
      id
    }
  }
`;

interface CreateSalesOrderPayload {
  order: {
    number: string;
    status: string | null;
    requestedDeliveryDate: string | null;
    lines: { quantity: number; product: { sku: string; name: string; warrantyMonths: number | null } | null }[] | null;
  } | null;
  errors: OrderError[];
  created: boolean;
}

const rejected = (errors: OrderError[]): SalesOrderOutput => ({
  orderNumber: null,
  status: null,
  expectedShipDate: null,
  customerId: null,
  items: [],
  errors,
});

/** Why the opportunity itself rules an order out, if it does. */
function opportunityErrors(opportunity: OpportunityFacts): OrderError[] {
  if (!opportunity.won)
    return [
      {
        code: 'OPPORTUNITY_NOT_WON',
        message: `Opportunity ${opportunity.id} is at stage ${opportunity.stage ?? 'unknown'}; only a closed-won opportunity becomes an order.`,
        line: null,
      },
    ];
  if (!opportunity.customerId)
    return [
      {
        code: 'OPPORTUNITY_HAS_NO_CUSTOMER',
        message: `Opportunity ${opportunity.id} has no account with a customer number: onboard the account first.`,
        line: null,
      },
    ];
  if (opportunity.lines.length === 0)
    return [{ code: 'OPPORTUNITY_HAS_NO_LINES', message: `Opportunity ${opportunity.id} has no products to order.`, line: null }];
  return [];
}

/**
 * Quote to order: a closed-won opportunity becomes an ERP sales order after the ERP's checks
 * (its reference is the opportunity, so whatever key or retry asks again finds the same order),
 * then the order number, status and expected ship date are written back to the opportunity
 * with an activity, then the desk records the installed base the order creates. A CRM outage
 * after the order exists delays the write-back, never makes a second order; a write-back the
 * CRM refuses for good (the opportunity deleted, a validation rule) cancels the ERP order.
 */
export function quoteToOrderWorkflow(deps: { graph: ServiceClient; logger: Logger }): WorkflowDefinition<QuoteToOrderInput> {
  const { graph } = deps;
  return {
    type: QUOTE_TO_ORDER_WORKFLOW,
    customerOf: (input) => input.opportunity.customerId,
    steps: [
      {
        name: QUOTE_TO_ORDER_STEPS.order,
        // Soon again at first: the rep waits for this step's answer.
        retry: { baseDelayMs: 200 },
        run: async (context) => {
          const { opportunity } = context.input;
          const refused = opportunityErrors(opportunity);
          if (refused.length) return endWorkflow(rejected(refused), `refused: ${refused.map((error) => error.code).join(', ')}`);
          // One customer's orders are checked and created one at a time, whichever replicas run
          // them: two cannot both fit under the credit limit or take the last units in stock.
          return context.exclusive(`orders:${opportunity.customerId}`, async () => {
            const reply = await graph.request<{ createSalesOrder: CreateSalesOrderPayload }>(
              CREATE_SALES_ORDER,
              {
                input: {
                  reference: `opportunity:${opportunity.id}`,
                  customerId: opportunity.customerId,
                  currency: opportunity.currency,
                  lines: opportunity.lines.map((line) => ({
                    sku: line.sku,
                    quantity: line.quantity,
                    unitPrice: line.unitPrice,
                    description: line.name?.slice(0, 100) ?? null,
                  })),
                },
              },
              context.correlationId,
            );
            const payload = dataOf(reply, 'createSalesOrder').createSalesOrder;
            if (payload.errors.length)
              return endWorkflow(rejected(payload.errors), `refused by the ERP: ${payload.errors.map((error) => error.code).join(', ')}`);
            const order = payload.order;
            if (!order) throw new Error('createSalesOrder: neither an order nor errors');
            deps.logger.info(
              {
                event: 'order.created',
                opportunityId: opportunity.id,
                orderNumber: order.number,
                customerId: opportunity.customerId,
                workflowId: context.instanceId,
                correlationId: context.correlationId,
              },
              'sales order created from the opportunity',
            );
            if (payload.created)
              context.emit({
                type: 'concord.order.created',
                subject: `order/${order.number}`,
                data: {
                  orderNumber: order.number,
                  customerId: opportunity.customerId,
                  opportunityId: opportunity.id,
                  status: order.status,
                  expectedShipDate: order.requestedDeliveryDate,
                },
              });
            const output: SalesOrderOutput = {
              orderNumber: order.number,
              created: payload.created,
              status: order.status,
              expectedShipDate: order.requestedDeliveryDate,
              customerId: opportunity.customerId,
              items: (order.lines ?? []).flatMap((line) =>
                line.product
                  ? [
                      {
                        sku: line.product.sku,
                        name: line.product.name,
                        quantity: line.quantity,
                        warrantyMonths: line.product.warrantyMonths,
                      },
                    ]
                  : [],
              ),
              errors: [],
            };
            return output;
          });
        },
        // The order can be undone while nothing of it has shipped; only the workflow that made it undoes it.
        compensate: async (context) => {
          const output = context.output as SalesOrderOutput | null;
          if (!output?.orderNumber || output.created === false) return;
          const reply = await graph.request<{ cancelSalesOrder: { outcome: string } }>(
            CANCEL_SALES_ORDER,
            { input: { number: output.orderNumber } },
            context.correlationId,
          );
          const { outcome } = dataOf(reply, 'cancelSalesOrder').cancelSalesOrder;
          if (outcome === 'CANCELLED')
            context.emit({
              type: 'concord.order.cancelled',
              subject: `order/${output.orderNumber}`,
              data: {
                orderNumber: output.orderNumber,
                customerId: output.customerId,
                reason: `the CRM could not take the order of opportunity ${context.input.opportunity.id}`,
              },
            });
          if (outcome === 'SHIPPED')
            throw new PermanentStepError(
              `order ${output.orderNumber} has shipped: it cannot be cancelled; credit it instead`,
              'ORDER_SHIPPED',
            );
          deps.logger.warn(
            {
              event: 'order.cancelled',
              orderNumber: output.orderNumber,
              outcome,
              workflowId: context.instanceId,
              correlationId: context.correlationId,
            },
            'sales order cancelled: the workflow could not finish',
          );
        },
      },
      {
        name: QUOTE_TO_ORDER_STEPS.confirmation,
        run: async (context) => {
          const order = context.results[QUOTE_TO_ORDER_STEPS.order] as SalesOrderOutput;
          const { opportunity } = context.input;
          const reply = await graph.request<{ recordOpportunityOrder: { id: string } | null }>(
            RECORD_OPPORTUNITY_ORDER,
            {
              input: {
                opportunityId: opportunity.id,
                // Once per opportunity, whichever of its workflows gets here: one activity, not one per request.
                idempotencyKey: `opportunity:${opportunity.id}:${QUOTE_TO_ORDER_STEPS.confirmation}`,
                orderNumber: order.orderNumber,
                orderStatus: order.status ?? 'OPEN',
                expectedShipDate: order.expectedShipDate,
                subject: `ERP order ${order.orderNumber} created`,
                description:
                  `Sales order ${order.orderNumber} (${(order.status ?? 'open').toLowerCase()}) from opportunity ${opportunity.name ?? opportunity.id}` +
                  `${order.expectedShipDate ? `; expected to ship ${order.expectedShipDate}` : ''}.`,
              },
            },
            context.correlationId,
          );
          if (!dataOf(reply, 'recordOpportunityOrder').recordOpportunityOrder)
            throw new PermanentStepError(`opportunity ${opportunity.id} is no longer in the CRM`, 'OPPORTUNITY_GONE');
          return null;
        },
      },
      {
        name: QUOTE_TO_ORDER_STEPS.installedBase,
        // The CRM shows the order by now: a refusal here waits for an operator, it undoes nothing.
        onRefusal: 'park',
        run: async (context) => {
          const order = context.results[QUOTE_TO_ORDER_STEPS.order] as SalesOrderOutput;
          const reply = await graph.request<{ recordInstalledBase: { id: string }[] | null }>(
            RECORD_INSTALLED_BASE,
            { input: { customerId: order.customerId, orderNumber: order.orderNumber, items: order.items } },
            context.correlationId,
          );
          // The desk may learn of the organization later: retried, then parked for an operator.
          if (!dataOf(reply, 'recordInstalledBase').recordInstalledBase)
            throw new Error(`recordInstalledBase: no organization in the desk for customer ${order.customerId}`);
          return null;
        },
      },
    ],
  };
}

/**
 * What reps call: turn a closed-won opportunity into an ERP order. The caller's key starts one
 * workflow however often it is sent; the workflows of one opportunity run one after the other
 * (its sequence key), and an opportunity already ordered is refused. Every sending waits, less
 * than the gateway's deadline, for the ERP step's answer: the order's number or the errors.
 */
export class QuoteToOrderRequests {
  constructor(private readonly deps: { engine: WorkflowEngine; graph: ServiceClient; logger: Logger; waitMs: number }) {}

  async convert(
    input: { opportunityId: string; idempotencyKey: string },
    identity: Identity,
    correlationId: string,
  ): Promise<QuoteToOrderOutcome> {
    const { engine, logger } = this.deps;
    const since = Date.now();
    const opportunityId = requireId('input.opportunityId', input.opportunityId);
    const key = requireKey('input.idempotencyKey', input.idempotencyKey);
    const audit = requestAudit(logger, 'quote_to_order', identity, correlationId, { opportunityId });
    const refuse = (code: string, message: string): QuoteToOrderOutcome => {
      audit('refused', { code });
      return { orderNumber: null, workflowId: null, errors: [{ code, message, line: null }] };
    };

    let alreadyOrdered: string | null = null;
    const started = await startOnce<QuoteToOrderInput>(
      engine,
      QUOTE_TO_ORDER_WORKFLOW,
      { key: scopedKey(identity, key), fingerprint: { opportunityId }, correlationId },
      async () => {
        const opportunity = await this.readOpportunity(opportunityId, correlationId);
        alreadyOrdered = opportunity?.orderNumber ?? null;
        if (!opportunity || alreadyOrdered) throw new Refused(opportunity ? 'ALREADY_ORDERED' : 'OPPORTUNITY_NOT_FOUND');
        return {
          input: { opportunity, requestedBy: { subject: identity.subject, roles: [...identity.roles] } },
          // One opportunity's conversions run one after the other: the second finds the first's order.
          sequenceKey: `opportunity:${opportunityId}`,
        };
      },
    ).catch((error: unknown) => {
      if (error instanceof Refused) return error;
      throw error;
    });
    if (started instanceof Refused)
      return started.code === 'ALREADY_ORDERED'
        ? refuse('ALREADY_ORDERED', `Opportunity ${opportunityId} is already ERP order ${alreadyOrdered}.`)
        : refuse('OPPORTUNITY_NOT_FOUND', `No opportunity ${opportunityId} in the CRM.`);
    if (started.kind === 'reused')
      return refuse(
        'IDEMPOTENCY_KEY_REUSED',
        'This idempotency key was already used for another opportunity; use a new key for a new request.',
      );
    const replay = started.kind === 'replayed';
    if (!replay)
      logger.info(
        { event: 'order.requested', opportunityId, workflowId: started.instance.id, correlationId },
        'order requested from an opportunity',
      );
    const { output, instance } = await auditedOutputOf<SalesOrderOutput>(
      audit,
      engine,
      started.instance,
      QUOTE_TO_ORDER_STEPS.order,
      since,
      this.deps.waitMs,
      'The order',
    );
    // The order was made, then cancelled: the CRM refused the write-back for good.
    if (instance.state === 'compensated' && output.orderNumber) {
      audit('cancelled', { orderNumber: output.orderNumber, workflowId: instance.id });
      return {
        orderNumber: null,
        workflowId: instance.id,
        errors: [
          {
            code: 'ORDER_CANCELLED',
            message: `ERP order ${output.orderNumber} was made and then cancelled, because the CRM could not take it: ${instance.lastError ?? 'no reason given'}.`,
            line: null,
          },
        ],
      };
    }
    if (output.orderNumber) audit(replay ? 'replayed' : 'ordered', { orderNumber: output.orderNumber, workflowId: instance.id });
    else audit(replay ? 'replayed' : 'rejected', { codes: output.errors.map((error) => error.code), workflowId: instance.id });
    return { orderNumber: output.orderNumber, errors: output.errors, workflowId: instance.id };
  }

  private async readOpportunity(id: string, correlationId: string): Promise<OpportunityFacts | null> {
    const data = await readBeforeStart<{
      opportunity: {
        id: string;
        name: string | null;
        stage: string | null;
        won: boolean | null;
        currency: string | null;
        customer: { id: string } | null;
        order: { number: string } | null;
        lines: OpportunityFacts['lines'] | null;
      } | null;
    }>(this.deps.graph, {
      query: OPPORTUNITY_QUERY,
      id,
      correlationId,
      argument: 'input.opportunityId',
      system: 'crm',
      what: 'opportunity',
    });
    const found = data?.opportunity;
    if (!found) return null;
    return {
      id: found.id,
      name: found.name,
      stage: found.stage,
      won: found.won === true,
      customerId: found.customer?.id ?? null,
      currency: found.currency,
      orderNumber: found.order?.number ?? null,
      lines: found.lines ?? [],
    };
  }
}

/** The opportunity rules the request out before any workflow starts. */
class Refused extends Error {
  constructor(readonly code: 'ALREADY_ORDERED' | 'OPPORTUNITY_NOT_FOUND') {
    super(code);
  }
}
