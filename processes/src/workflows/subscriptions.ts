import type { Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { ServiceClient } from '../../../platform/service-client.ts';
import { isoDate, type Clock } from '../../../platform/time.ts';
import { requireId, requireKey } from '../../../platform/validate.ts';
import { endWorkflow, type WorkflowDefinition, type WorkflowEngine } from '../../../platform/workflow/engine.ts';
import { dataOf, readBeforeStart } from './graph.ts';
import { auditedOutputOf, requestAudit, scopedKey, startOnce } from './requests.ts';

export const SUBSCRIPTION_WORKFLOW = 'subscription-change';
/** The steps, in order: the ERP's billing schedule, the desk's entitlement, the CRM's activity. */
export const SUBSCRIPTION_STEPS = { billing: 'erp-billing-schedule', entitlement: 'desk-entitlement', activity: 'crm-activity' } as const;

export type SubscriptionChange = 'ACTIVATE' | 'AMEND' | 'SUSPEND' | 'RENEW';

/** The subscription as the CRM had it when the change was asked: the state the change leaves. */
export interface SubscriptionFacts {
  id: string;
  customerId: string | null;
  plan: string;
  quantity: number;
  tier: 'BASIC' | 'STANDARD' | 'PREMIUM';
  status: 'DRAFT' | 'ACTIVE' | 'SUSPENDED' | 'EXPIRED';
  startDate: string | null;
  endDate: string | null;
  unitPrice: string;
  frequency: 'MONTHLY' | 'ANNUAL';
  currency: string;
}

export interface SubscriptionInput {
  change: SubscriptionChange;
  subscription: SubscriptionFacts;
  requestedBy: { subject: string; roles: string[] };
}

export interface SubscriptionError {
  code: string;
  message: string;
  field: string | null;
}

/** What the ERP step gave: the billing schedule's version after the change, or why not. */
export interface BillingOutput {
  version: number | null;
  status: string | null;
  nextInvoiceDate: string | null;
  errors: SubscriptionError[];
}

export interface SubscriptionOutcome {
  billingVersion: number | null;
  errors: SubscriptionError[];
  workflowId: string | null;
}

/** The CRM state each change must find (the change is made in the CRM first, then carried out here). */
const STATUS_AFTER: Readonly<Record<SubscriptionChange, SubscriptionFacts['status']>> = {
  ACTIVATE: 'ACTIVE',
  AMEND: 'ACTIVE',
  SUSPEND: 'SUSPENDED',
  RENEW: 'ACTIVE',
};

const SUBSCRIPTION_QUERY = /* GraphQL */ `
  query ChangedSubscription($id: ID!) {
    serviceSubscription(id: $id) {
      id
      customer {
        id
      }
      plan
      quantity
      tier
      status
      startDate
      endDate
      unitPrice
      frequency
      currency
    }
  }
`;

const APPLY_BILLING_CHANGE = /* GraphQL */ `
  mutation ApplyBillingChange($input: ApplyBillingChangeInput!) {
    applyBillingChange(input: $input) {
      schedule {
        version
        status
        nextInvoiceDate
      }
      errors {
        code
        message
        field
      }
    }
  }
`;

const SET_ENTITLEMENT = /* GraphQL */ `
  mutation SetEntitlement($input: SetEntitlementInput!) {
    setEntitlement(input: $input) {
      subscriptionId
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

const rejected = (errors: SubscriptionError[]): BillingOutput => ({ version: null, status: null, nextInvoiceDate: null, errors });

/**
 * The subscription lifecycle: a change made in the CRM (activate, amend the quantity or tier,
 * suspend, renew) is carried to the ERP's billing schedule, then to the desk's entitlement (the
 * support tier and its SLA), then noted on the CRM account. The changes of one subscription run
 * one after the other in the order they were asked (its sequence key), each exactly once (each
 * write with its step's key): a later change never overtakes an earlier one.
 */
export function subscriptionWorkflow(deps: { graph: ServiceClient; logger: Logger; clock: Clock }): WorkflowDefinition<SubscriptionInput> {
  const { graph } = deps;
  return {
    type: SUBSCRIPTION_WORKFLOW,
    customerOf: (input) => input.subscription.customerId,
    steps: [
      {
        name: SUBSCRIPTION_STEPS.billing,
        // Soon again at first: the caller waits for this step's answer.
        retry: { baseDelayMs: 200 },
        run: async (context) => {
          const { subscription: s, change } = context.input;
          const reply = await graph.request<{
            applyBillingChange: {
              schedule: { version: number; status: string; nextInvoiceDate: string | null } | null;
              errors: SubscriptionError[];
            };
          }>(
            APPLY_BILLING_CHANGE,
            {
              input: {
                key: context.idempotencyKey,
                subscriptionId: s.id,
                customerId: s.customerId,
                plan: s.plan,
                quantity: s.quantity,
                unitPrice: s.unitPrice,
                frequency: s.frequency,
                status: change === 'SUSPEND' ? 'SUSPENDED' : 'ACTIVE',
                startDate: s.startDate ?? isoDate(deps.clock()),
                endDate: s.endDate,
                currency: s.currency,
              },
            },
            context.correlationId,
          );
          const payload = dataOf(reply, 'applyBillingChange').applyBillingChange;
          if (payload.errors.length)
            return endWorkflow(rejected(payload.errors), `refused by the ERP: ${payload.errors.map((error) => error.code).join(', ')}`);
          if (!payload.schedule) throw new Error('applyBillingChange: neither a schedule nor errors');
          deps.logger.info(
            {
              event: 'subscription.billed',
              subscriptionId: s.id,
              change,
              version: payload.schedule.version,
              workflowId: context.instanceId,
              correlationId: context.correlationId,
            },
            'subscription change applied to its billing schedule',
          );
          context.emit({
            type: 'concord.subscription.changed',
            subject: `subscription/${s.id}`,
            data: {
              subscriptionId: s.id,
              customerId: s.customerId,
              change,
              billingVersion: payload.schedule.version,
              quantity: s.quantity,
              tier: s.tier,
              status: change === 'SUSPEND' ? 'SUSPENDED' : 'ACTIVE',
            },
          });
          const output: BillingOutput = {
            version: payload.schedule.version,
            status: payload.schedule.status,
            nextInvoiceDate: payload.schedule.nextInvoiceDate,
            errors: [],
          };
          return output;
        },
      },
      {
        name: SUBSCRIPTION_STEPS.entitlement,
        run: async (context) => {
          const { subscription: s, change } = context.input;
          const reply = await graph.request<{ setEntitlement: { subscriptionId: string }[] | null }>(
            SET_ENTITLEMENT,
            { input: { customerId: s.customerId, subscriptionId: s.id, tier: s.tier, active: change !== 'SUSPEND', until: s.endDate } },
            context.correlationId,
          );
          // The desk may learn of the organization later: retried, then parked for an operator.
          if (!dataOf(reply, 'setEntitlement').setEntitlement)
            throw new Error(`setEntitlement: no organization in the desk for customer ${s.customerId}`);
          return null;
        },
      },
      {
        name: SUBSCRIPTION_STEPS.activity,
        run: async (context) => {
          const { subscription: s, change } = context.input;
          const billing = context.results[SUBSCRIPTION_STEPS.billing] as BillingOutput;
          const verb = { ACTIVATE: 'activated', AMEND: 'amended', SUSPEND: 'suspended', RENEW: 'renewed' }[change];
          const reply = await graph.request<{ logCustomerActivity: { id: string } | null }>(
            LOG_CUSTOMER_ACTIVITY,
            {
              input: {
                customerId: s.customerId,
                idempotencyKey: context.idempotencyKey,
                subject: `Subscription ${verb}: ${s.quantity} × ${s.plan}, ${s.tier.toLowerCase()} support`,
                description:
                  `Billing schedule version ${billing.version} (${(billing.status ?? '').toLowerCase()}` +
                  `${billing.nextInvoiceDate ? `, next invoice ${billing.nextInvoiceDate}` : ''}); ` +
                  `desk entitlement ${change === 'SUSPEND' ? 'suspended' : s.tier.toLowerCase()}${s.endDate ? ` until ${s.endDate}` : ''}.`,
                activityDate: isoDate(deps.clock()),
              },
            },
            context.correlationId,
          );
          if (!dataOf(reply, 'logCustomerActivity').logCustomerActivity)
            throw new Error(`logCustomerActivity: customer ${s.customerId} has no CRM account`);
          return null;
        },
      },
    ],
  };
}

/**
 * What sales and finance call (and, later, the CRM's change events): carry out a change made to
 * a subscription in the CRM. The caller's key starts one workflow however often it is sent; the
 * subscription is read as the CRM has it now, and must show the change (an amendment of an
 * active subscription, a suspension of a suspended one). Every sending waits, less than the
 * gateway's deadline, for the ERP's answer: the billing schedule's version or the errors.
 */
export class SubscriptionRequests {
  constructor(private readonly deps: { engine: WorkflowEngine; graph: ServiceClient; logger: Logger; waitMs: number }) {}

  async apply(
    input: { subscriptionId: string; change: SubscriptionChange; idempotencyKey: string },
    identity: Identity,
    correlationId: string,
  ): Promise<SubscriptionOutcome> {
    const { engine, logger } = this.deps;
    const since = Date.now();
    const subscriptionId = requireId('input.subscriptionId', input.subscriptionId);
    const key = requireKey('input.idempotencyKey', input.idempotencyKey);
    const audit = requestAudit(logger, 'subscription_change', identity, correlationId, { subscriptionId, change: input.change });
    const refuse = (code: string, message: string): SubscriptionOutcome => {
      audit('refused', { code });
      return { billingVersion: null, workflowId: null, errors: [{ code, message, field: null }] };
    };
    let seen: SubscriptionFacts | null = null;
    let started;
    try {
      started = await startOnce<SubscriptionInput>(
        engine,
        SUBSCRIPTION_WORKFLOW,
        { key: scopedKey(identity, key), fingerprint: { subscriptionId, change: input.change }, correlationId },
        async () => {
          seen = await this.readSubscription(subscriptionId, correlationId);
          if (!seen || !seen.customerId || seen.status !== STATUS_AFTER[input.change]) throw new NotToApply();
          return {
            input: { change: input.change, subscription: seen, requestedBy: { subject: identity.subject, roles: [...identity.roles] } },
            // One subscription's changes run one after the other, in the order they were asked.
            sequenceKey: `subscription:${subscriptionId}`,
          };
        },
      );
    } catch (error) {
      if (!(error instanceof NotToApply)) throw error;
      const found = seen as SubscriptionFacts | null;
      if (!found) return refuse('SUBSCRIPTION_NOT_FOUND', `No subscription ${subscriptionId} in the CRM.`);
      if (!found.customerId)
        return refuse('SUBSCRIPTION_HAS_NO_CUSTOMER', `Subscription ${subscriptionId} has no account with a customer number.`);
      return refuse(
        'CHANGE_NOT_IN_CRM',
        `The CRM shows subscription ${subscriptionId} as ${found.status.toLowerCase()}; ` +
          `${input.change.toLowerCase()} it in the CRM first (it must be ${STATUS_AFTER[input.change].toLowerCase()}).`,
      );
    }
    if (started.kind === 'reused')
      return refuse('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was already used for another change; use a new key for a new change.');
    const replay = started.kind === 'replayed';
    if (!replay)
      logger.info(
        { event: 'subscription.change_requested', subscriptionId, change: input.change, workflowId: started.instance.id, correlationId },
        'subscription change requested',
      );
    const { output, instance } = await auditedOutputOf<BillingOutput>(
      audit,
      engine,
      started.instance,
      SUBSCRIPTION_STEPS.billing,
      since,
      this.deps.waitMs,
      'The change',
    );
    if (output.version !== null) audit(replay ? 'replayed' : 'applied', { version: output.version, workflowId: instance.id });
    else audit(replay ? 'replayed' : 'rejected', { codes: output.errors.map((error) => error.code), workflowId: instance.id });
    return { billingVersion: output.version, errors: output.errors, workflowId: instance.id };
  }

  private async readSubscription(id: string, correlationId: string): Promise<SubscriptionFacts | null> {
    const data = await readBeforeStart<{
      serviceSubscription: (Omit<SubscriptionFacts, 'customerId'> & { customer: { id: string } | null }) | null;
    }>(this.deps.graph, {
      query: SUBSCRIPTION_QUERY,
      id,
      correlationId,
      argument: 'input.subscriptionId',
      system: 'crm',
      what: 'subscription',
    });
    const found = data?.serviceSubscription;
    if (!found) return null;
    const { customer, ...rest } = found;
    return { ...rest, customerId: customer?.id ?? null };
  }
}

/** The subscription rules the request out before any workflow starts. */
class NotToApply extends Error {}
