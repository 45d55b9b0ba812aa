import type { EventDraft } from '../../../../platform/events/cloudevent.ts';
import { factsOf, known, type ChangeFacts } from '../../../../platform/events/source.ts';

export type { ChangeFacts };
import type { BillingFrequency, ContractStatus, OnboardingStatus, SubscriptionStatus, SupportTier } from '../connectors/types.ts';

/**
 * The CRM's canonical change events (schema/events/concord.*.json), built from what the CRM
 * says in canonical terms, whichever way it told: the embedded CRM's change log or Salesforce's
 * change events.
 */

/** A CRM account of a customer changed (or a record that is part of the customer, named by `changes`). */
export function customerUpdated(customerId: string, changes?: readonly string[]): EventDraft {
  return { type: 'concord.customer.updated', subject: `customer/${customerId}`, data: { customerId, ...factsOf({ changes }) } };
}

export interface AccountState {
  readonly accountId: string;
  /** Set when this change gave the account its customer number. */
  readonly customerId?: string | null | undefined;
  readonly onboardingStatus?: OnboardingStatus | null | undefined;
}

/** A CRM account that is not (or has just become) a customer changed. */
export function accountUpdated(account: AccountState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.account.updated',
    subject: `account/${account.accountId}`,
    data: {
      accountId: account.accountId,
      ...known({ customerId: account.customerId ?? undefined, onboardingStatus: account.onboardingStatus ?? undefined }),
      ...factsOf(facts),
    },
  };
}

export function contactUpdated(contactId: string, customerId: string | null | undefined, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.contact.updated',
    subject: `contact/${contactId}`,
    data: { contactId, ...known({ customerId: customerId ?? undefined }), ...factsOf(facts) },
  };
}

export interface ContractState {
  /** The contract number. */
  readonly id: string;
  readonly customerId: string | null | undefined;
  readonly status?: ContractStatus | undefined;
  readonly supportTier?: SupportTier | undefined;
  readonly startDate?: string | null | undefined;
  readonly endDate?: string | null | undefined;
}

export function contractUpdated(contract: ContractState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.contract.updated',
    subject: `contract/${contract.id}`,
    data: {
      contractId: contract.id,
      ...known({
        customerId: contract.customerId,
        status: contract.status,
        supportTier: contract.supportTier,
        startDate: contract.startDate,
        endDate: contract.endDate,
      }),
      ...factsOf(facts),
    },
  };
}

export interface OpportunityState {
  readonly id: string;
  readonly customerId?: string | null | undefined;
  readonly stage?: string | undefined;
  readonly isClosed?: boolean | undefined;
  readonly isWon?: boolean | undefined;
  readonly erpOrderNumber?: string | null | undefined;
}

export function opportunityUpdated(opportunity: OpportunityState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.opportunity.updated',
    subject: `opportunity/${opportunity.id}`,
    data: {
      opportunityId: opportunity.id,
      ...known({
        customerId: opportunity.customerId ?? undefined,
        stage: opportunity.stage || undefined,
        closed: opportunity.isClosed,
        won: opportunity.isWon,
        orderNumber: opportunity.erpOrderNumber,
      }),
      ...factsOf(facts),
    },
  };
}

/** A subscription as its event tells it: everything a process needs to bill and entitle it. */
export interface SubscriptionState {
  readonly id: string;
  readonly customerId: string | null;
  readonly contractId?: string | null | undefined;
  readonly plan: string;
  readonly quantity: number;
  readonly tier: SupportTier;
  readonly status: SubscriptionStatus;
  readonly startDate: string | null;
  readonly endDate: string | null;
  readonly unitPrice: string;
  readonly frequency: BillingFrequency;
  readonly currency: string;
}

export function subscriptionUpdated(subscription: SubscriptionState, facts: ChangeFacts = {}): EventDraft {
  return {
    type: 'concord.subscription.updated',
    subject: `subscription/${subscription.id}`,
    data: {
      subscriptionId: subscription.id,
      customerId: subscription.customerId,
      ...known({ contractId: subscription.contractId }),
      status: subscription.status,
      quantity: subscription.quantity,
      plan: subscription.plan,
      tier: subscription.tier,
      startDate: subscription.startDate,
      endDate: subscription.endDate,
      unitPrice: subscription.unitPrice,
      frequency: subscription.frequency,
      currency: subscription.currency,
      ...factsOf(facts),
    },
  };
}

/** A subscription deleted where nothing more than its id is known (Salesforce's DELETE events carry no fields). */
export function subscriptionDeleted(subscriptionId: string): EventDraft {
  return {
    type: 'concord.subscription.updated',
    subject: `subscription/${subscriptionId}`,
    data: { subscriptionId, deleted: true },
  };
}
