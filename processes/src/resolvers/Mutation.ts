import { maxLength, requireId } from '../../../platform/validate.ts';
import { OperatorActionError, type OperatorAction } from '../../../platform/workflow/engine.ts';
import type {
  AccountOnboardingErrorCode,
  MutationResolvers,
  QuoteToOrderErrorCode,
  ReturnAuthorizationErrorCode,
  SubscriptionChangeErrorCode,
  WorkflowAction,
} from '../__generated__/resolvers-types.ts';

/** The longest reason an operator may give (it is kept in the workflow's history). */
export const MAX_REASON_LENGTH = 500;

const ACTIONS: Record<WorkflowAction, OperatorAction> = { RETRY: 'retry', SKIP: 'skip', COMPENSATE: 'compensate' };

export const Mutation: MutationResolvers = {
  async createReturnAuthorization(_root, { input }, { returns, details, identity, correlationId }) {
    const outcome = await returns.create(
      {
        caseId: requireId('input.caseId', input.caseId),
        lines: input.lines.map((line) => ({
          serialNumber: line.serialNumber ?? null,
          orderLine: line.orderLine ?? null,
          quantity: line.quantity,
          reason: line.reason,
        })),
        resolution: input.resolution,
        idempotencyKey: input.idempotencyKey,
        note: input.note ?? null,
      },
      identity,
      correlationId,
    );
    return {
      returnAuthorization: outcome.returnNumber ? { number: outcome.returnNumber } : null,
      errors: outcome.errors.map((error) => ({ ...error, code: error.code as ReturnAuthorizationErrorCode })),
      workflow: outcome.workflowId ? await details.load(outcome.workflowId) : null,
    };
  },
  async convertOpportunityToOrder(_root, { input }, { quoteToOrder, details, identity, correlationId }) {
    const outcome = await quoteToOrder.convert(input, identity, correlationId);
    return {
      order: outcome.orderNumber ? { number: outcome.orderNumber } : null,
      errors: outcome.errors.map((error) => ({ ...error, code: error.code as QuoteToOrderErrorCode })),
      workflow: outcome.workflowId ? await details.load(outcome.workflowId) : null,
    };
  },
  async onboardAccount(_root, { input }, { onboarding, details, identity, correlationId }) {
    const outcome = await onboarding.onboard(input, identity, correlationId);
    return {
      customer: outcome.customerNumber ? { id: outcome.customerNumber } : null,
      errors: outcome.errors.map((error) => ({ ...error, code: error.code as AccountOnboardingErrorCode })),
      workflow: outcome.workflowId ? await details.load(outcome.workflowId) : null,
    };
  },
  async applySubscriptionChange(_root, { input }, { subscriptions, details, identity, correlationId }) {
    const outcome = await subscriptions.apply(input, identity, correlationId);
    return {
      billingVersion: outcome.billingVersion,
      errors: outcome.errors.map((error) => ({ ...error, code: error.code as SubscriptionChangeErrorCode })),
      workflow: outcome.workflowId ? await details.load(outcome.workflowId) : null,
    };
  },
  async resolveWorkflow(_root, { input }, { engine, details, identity }) {
    const id = requireId('input.id', input.id);
    maxLength('input.reason', input.reason, MAX_REASON_LENGTH);
    const reason = input.reason?.trim() || null;
    try {
      const workflow = await engine.act(id, ACTIONS[input.action], identity.subject, reason);
      // Steps and history are read through the loader: it holds the instance as the decision left it.
      details.clear(id).prime(id, workflow);
      return { workflow, errors: [] };
    } catch (error) {
      if (!(error instanceof OperatorActionError)) throw error;
      return {
        workflow: error.code === 'NOT_FOUND' ? null : await details.load(id),
        errors: [{ code: error.code, message: error.message }],
      };
    }
  },
};
