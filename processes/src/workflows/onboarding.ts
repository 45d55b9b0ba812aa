import type { Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { ServiceClient } from '../../../platform/service-client.ts';
import { requireId, requireKey } from '../../../platform/validate.ts';
import { PermanentStepError, type WorkflowDefinition, type WorkflowEngine } from '../../../platform/workflow/engine.ts';
import { dataOf, readBeforeStart } from './graph.ts';
import { auditedOutputOf, requestAudit, scopedKey, startOnce } from './requests.ts';

export const ONBOARDING_WORKFLOW = 'customer-onboarding';
/** The steps, in order: the ERP's customer (or its refusal), then the outcome on the CRM account. */
export const ONBOARDING_STEPS = { customer: 'erp-customer', outcome: 'crm-outcome' } as const;

/** The account as the CRM had it when onboarding was asked. */
export interface AccountFacts {
  id: string;
  name: string;
  customerId: string | null;
  status: string | null;
  billingAddress: {
    street: string | null;
    city: string | null;
    state: string | null;
    postalCode: string | null;
    country: string | null;
  } | null;
  billingEmail: string | null;
  phone: string | null;
  taxRegistrationNumber: string | null;
  currency: string | null;
}

export interface OnboardingInput {
  account: AccountFacts;
  requestedBy: { subject: string; roles: string[] };
}

/** A rule the account breaks: a code, a message its owner can act on, the field concerned. */
export interface OnboardingError {
  code: string;
  message: string;
  field: string | null;
}

/** What the ERP step gave: the customer's number, or why there is none. */
export interface CustomerOutput {
  customerNumber: string | null;
  /** Whether this workflow's call made the customer (only then does undoing it block the customer). */
  created?: boolean;
  errors: OnboardingError[];
}

export interface OnboardingOutcome {
  customerNumber: string | null;
  errors: OnboardingError[];
  workflowId: string | null;
}

const ACCOUNT_QUERY = /* GraphQL */ `
  query OnboardingAccount($id: ID!) {
    account(id: $id) {
      id
      name
      onboardingStatus
      customer {
        id
      }
      billingAddress {
        street
        city
        state
        postalCode
        country
      }
      billingEmail
      phone
      taxRegistrationNumber
      currency
    }
  }
`;

const ONBOARD_CUSTOMER = /* GraphQL */ `
  mutation OnboardCustomer($input: OnboardCustomerInput!) {
    onboardCustomer(input: $input) {
      customer {
        id
      }
      errors {
        code
        message
        field
      }
      created
    }
  }
`;

const BLOCK_CUSTOMER = /* GraphQL */ `
  mutation BlockCustomer($input: BlockCustomerInput!) {
    blockCustomer(input: $input) {
      number
      blocked
    }
  }
`;

const RECORD_ACCOUNT_ONBOARDING = /* GraphQL */ `
  mutation RecordAccountOnboarding($input: RecordAccountOnboardingInput!) {
    recordAccountOnboarding(input: $input) {
      id
    }
  }
`;

/**
 * Customer onboarding: an account created in the CRM is not active for ordering until the ERP
 * has validated it (billing profile, tax registration number, no duplicate among its customers)
 * and made it a customer; the outcome, active with its customer number or rejected with the
 * reasons, is written back to the account with an activity. An account the CRM can no longer
 * take the outcome for (deleted, a rule refusing it) has the new ERP customer blocked again.
 */
export function onboardingWorkflow(deps: { graph: ServiceClient; logger: Logger }): WorkflowDefinition<OnboardingInput> {
  const { graph } = deps;
  return {
    type: ONBOARDING_WORKFLOW,
    customerOf: (input) => input.account.customerId,
    steps: [
      {
        name: ONBOARDING_STEPS.customer,
        // Soon again at first: the rep waits for this step's answer.
        retry: { baseDelayMs: 200 },
        run: async (context) => {
          const { account } = context.input;
          // One tax number is checked and made a customer one at a time, whichever replicas run
          // the workflows: two accounts of one company cannot both pass the duplicate check.
          const taxId = account.taxRegistrationNumber?.replace(/\s+/g, '').toUpperCase() || account.name.toUpperCase();
          return context.exclusive(`onboarding:${taxId}`, async () => {
            const reply = await graph.request<{
              onboardCustomer: { customer: { id: string } | null; errors: OnboardingError[]; created: boolean };
            }>(
              ONBOARD_CUSTOMER,
              {
                input: {
                  reference: `crm-account:${account.id}`,
                  name: account.name,
                  email: account.billingEmail,
                  phone: account.phone,
                  address: account.billingAddress,
                  currency: account.currency ?? 'USD',
                  taxRegistrationNumber: account.taxRegistrationNumber,
                },
              },
              context.correlationId,
            );
            const payload = dataOf(reply, 'onboardCustomer').onboardCustomer;
            // A refusal is an outcome too: the next step tells the CRM why.
            const output: CustomerOutput = {
              customerNumber: payload.customer?.id ?? null,
              created: payload.created,
              errors: payload.errors,
            };
            if (!output.customerNumber && !output.errors.length) throw new Error('onboardCustomer: neither a customer nor errors');
            if (output.customerNumber && output.created)
              context.emit({
                type: 'concord.customer.onboarded',
                subject: `customer/${output.customerNumber}`,
                data: { customerId: output.customerNumber, accountId: account.id },
              });
            deps.logger.info(
              {
                event: output.customerNumber ? 'customer.onboarded' : 'customer.rejected',
                accountId: account.id,
                customerId: output.customerNumber,
                codes: output.errors.map((error) => error.code),
                workflowId: context.instanceId,
                correlationId: context.correlationId,
              },
              output.customerNumber ? 'account made an ERP customer' : 'account refused by the ERP',
            );
            return output;
          });
        },
        // The customer is blocked again: Business Central keeps a customer once it has entries.
        compensate: async (context) => {
          const output = context.output as CustomerOutput | null;
          if (!output?.customerNumber || output.created === false) return;
          const reply = await graph.request<{ blockCustomer: { blocked: boolean } }>(
            BLOCK_CUSTOMER,
            { input: { number: output.customerNumber } },
            context.correlationId,
          );
          dataOf(reply, 'blockCustomer');
          deps.logger.warn(
            {
              event: 'customer.blocked',
              customerId: output.customerNumber,
              workflowId: context.instanceId,
              correlationId: context.correlationId,
            },
            'ERP customer blocked: the onboarding could not finish',
          );
        },
      },
      {
        name: ONBOARDING_STEPS.outcome,
        run: async (context) => {
          const { account } = context.input;
          const customer = context.results[ONBOARDING_STEPS.customer] as CustomerOutput;
          const active = customer.customerNumber !== null;
          const reason = active
            ? null
            : customer.errors
                .map((error) => error.message)
                .join(' ')
                .slice(0, 255);
          const reply = await graph.request<{ recordAccountOnboarding: { id: string } | null }>(
            RECORD_ACCOUNT_ONBOARDING,
            {
              input: {
                accountId: account.id,
                idempotencyKey: context.idempotencyKey,
                status: active ? 'ACTIVE' : 'REJECTED',
                customerNumber: customer.customerNumber,
                reason,
                subject: active ? `Onboarded: ERP customer ${customer.customerNumber}` : 'Onboarding refused by the ERP',
                description: active
                  ? `${account.name} is ERP customer ${customer.customerNumber} and may order.`
                  : `The ERP refused ${account.name}: ${customer.errors.map((error) => `${error.code}: ${error.message}`).join(' ')}`,
              },
            },
            context.correlationId,
          );
          if (!dataOf(reply, 'recordAccountOnboarding').recordAccountOnboarding)
            throw new PermanentStepError(`account ${account.id} is no longer in the CRM`, 'ACCOUNT_GONE');
          return null;
        },
      },
    ],
  };
}

/**
 * What sales and finance call: onboard a CRM account. The caller's key starts one workflow
 * however often it is sent; the workflows of one account run one after the other, and an
 * account already active is refused. Every sending waits, less than the gateway's deadline, for
 * the ERP's answer: the customer's number or the reasons it was refused.
 */
export class OnboardingRequests {
  constructor(private readonly deps: { engine: WorkflowEngine; graph: ServiceClient; logger: Logger; waitMs: number }) {}

  async onboard(
    input: { accountId: string; idempotencyKey: string },
    identity: Identity,
    correlationId: string,
  ): Promise<OnboardingOutcome> {
    const { engine, logger } = this.deps;
    const since = Date.now();
    const accountId = requireId('input.accountId', input.accountId);
    const key = requireKey('input.idempotencyKey', input.idempotencyKey);
    const audit = requestAudit(logger, 'customer_onboarding', identity, correlationId, { accountId });
    const refuse = (code: string, message: string): OnboardingOutcome => {
      audit('refused', { code });
      return { customerNumber: null, workflowId: null, errors: [{ code, message, field: null }] };
    };
    let known: AccountFacts | null = null;
    let started;
    try {
      started = await startOnce<OnboardingInput>(
        engine,
        ONBOARDING_WORKFLOW,
        { key: scopedKey(identity, key), fingerprint: { accountId }, correlationId },
        async () => {
          known = await this.readAccount(accountId, correlationId);
          if (!known || (known.status === 'ACTIVE' && known.customerId)) throw new NotToOnboard();
          return {
            input: { account: known, requestedBy: { subject: identity.subject, roles: [...identity.roles] } },
            sequenceKey: `account:${accountId}`,
          };
        },
      );
    } catch (error) {
      if (!(error instanceof NotToOnboard)) throw error;
      const account = known as AccountFacts | null;
      return account
        ? refuse('ALREADY_ONBOARDED', `Account ${accountId} is ERP customer ${account.customerId} already.`)
        : refuse('ACCOUNT_NOT_FOUND', `No account ${accountId} in the CRM.`);
    }
    if (started.kind === 'reused')
      return refuse(
        'IDEMPOTENCY_KEY_REUSED',
        'This idempotency key was already used for another account; use a new key for a new request.',
      );
    const replay = started.kind === 'replayed';
    if (!replay)
      logger.info({ event: 'onboarding.requested', accountId, workflowId: started.instance.id, correlationId }, 'onboarding requested');
    const { output, instance } = await auditedOutputOf<CustomerOutput>(
      audit,
      engine,
      started.instance,
      ONBOARDING_STEPS.customer,
      since,
      this.deps.waitMs,
      'The onboarding',
    );
    // The customer was made, then blocked again: the CRM could not take the outcome.
    if (instance.state === 'compensated' && output.customerNumber) {
      audit('undone', { customerId: output.customerNumber, workflowId: instance.id });
      return {
        customerNumber: null,
        workflowId: instance.id,
        errors: [
          {
            code: 'ONBOARDING_UNDONE',
            message: `ERP customer ${output.customerNumber} was made and then blocked again, because the CRM could not take the outcome: ${instance.lastError ?? 'no reason given'}.`,
            field: null,
          },
        ],
      };
    }
    if (output.customerNumber) audit(replay ? 'replayed' : 'onboarded', { customerId: output.customerNumber, workflowId: instance.id });
    else audit(replay ? 'replayed' : 'rejected', { codes: output.errors.map((error) => error.code), workflowId: instance.id });
    return { customerNumber: output.customerNumber, errors: output.errors, workflowId: instance.id };
  }

  private async readAccount(id: string, correlationId: string): Promise<AccountFacts | null> {
    const data = await readBeforeStart<{
      account: {
        id: string;
        name: string | null;
        onboardingStatus: string | null;
        customer: { id: string } | null;
        billingAddress: AccountFacts['billingAddress'];
        billingEmail: string | null;
        phone: string | null;
        taxRegistrationNumber: string | null;
        currency: string | null;
      } | null;
    }>(this.deps.graph, {
      query: ACCOUNT_QUERY,
      id,
      correlationId,
      argument: 'input.accountId',
      system: 'crm',
      what: 'account',
    });
    const found = data?.account;
    if (!found) return null;
    return {
      id: found.id,
      name: found.name ?? found.id,
      customerId: found.customer?.id ?? null,
      status: found.onboardingStatus,
      billingAddress: found.billingAddress,
      billingEmail: found.billingEmail,
      phone: found.phone,
      taxRegistrationNumber: found.taxRegistrationNumber,
      currency: found.currency,
    };
  }
}

/** The account rules the request out before any workflow starts (unknown, or active already). */
class NotToOnboard extends Error {}
