import type { EventBroker, EventConsumer } from '../../platform/events/broker.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import type { Identity } from '../../platform/identity.ts';
import type { Logger } from '../../platform/logger.ts';
import type { ServiceClient } from '../../platform/service-client.ts';
import type { SubscriptionChange, SubscriptionRequests } from './workflows/subscriptions.ts';

/** The CRM's state of a subscription as `concord.subscription.updated` tells it (schema/events/). */
interface CrmSubscription {
  readonly subscriptionId: string;
  readonly customerId?: string | null;
  readonly status?: 'DRAFT' | 'ACTIVE' | 'SUSPENDED' | 'EXPIRED';
  readonly quantity?: number;
  readonly unitPrice?: string;
  readonly frequency?: 'MONTHLY' | 'ANNUAL';
  readonly endDate?: string | null;
  readonly changes?: readonly string[];
  readonly deleted?: boolean;
}

interface Billed {
  readonly subscriptionId: string;
  readonly quantity: number;
  readonly unitPrice: { readonly amount: string };
  readonly frequency: 'MONTHLY' | 'ANNUAL';
  readonly status: 'ACTIVE' | 'SUSPENDED';
  readonly endDate: string | null;
}

const BILLED = /* GraphQL */ `
  query BilledSubscriptions($customer: ID!) {
    customer(id: $customer) {
      billingSchedules {
        subscriptionId
        quantity
        unitPrice {
          amount
        }
        frequency
        status
        endDate
      }
    }
  }
`;

/** CRM fields whose change is an amendment when billing shows nothing else (the support tier: the desk's entitlement). */
const TIER_CHANGES = /tier/i;

/**
 * What a subscription's CRM state asks of billing, against what the ERP bills now: active in the
 * CRM and not billed → ACTIVATE; active and billed suspended, or billed to an earlier end →
 * RENEW; active with another quantity, price, frequency or support tier → AMEND; suspended in the
 * CRM and billed active → SUSPEND. Null: billing already shows it (a change told twice, a field
 * billing does not carry).
 */
export function changeAsked(crm: CrmSubscription, billed: Billed | null): SubscriptionChange | null {
  if (crm.deleted) return null;
  if (crm.status === 'SUSPENDED') return billed && billed.status === 'ACTIVE' ? 'SUSPEND' : null;
  if (crm.status !== 'ACTIVE') return null;
  if (!billed) return 'ACTIVATE';
  if (billed.status === 'SUSPENDED' || (crm.endDate && (!billed.endDate || crm.endDate > billed.endDate))) return 'RENEW';
  const amended =
    (crm.quantity !== undefined && crm.quantity !== billed.quantity) ||
    (crm.unitPrice !== undefined && Number(crm.unitPrice) !== Number(billed.unitPrice.amount)) ||
    (crm.frequency !== undefined && crm.frequency !== billed.frequency) ||
    (crm.changes ?? []).some((change) => TIER_CHANGES.test(change));
  return amended ? 'AMEND' : null;
}

/**
 * The subscription lifecycle driven by the CRM's change events: a durable consumer of
 * `concord.subscription.updated` (the CRM's feed, subgraphs/crm) that asks for the change the
 * CRM's state implies, as the process service's own identity, with the event's id in the
 * idempotency key, so an event told twice starts one workflow. The same requests as the
 * `applySubscriptionChange` mutation: billing, then the desk's entitlement, then the CRM
 * activity. Replicas of the process service share the consumer (on NATS they split its events).
 */
export async function followCrmSubscriptions(deps: {
  broker: EventBroker;
  graph: ServiceClient;
  subscriptions: SubscriptionRequests;
  identity: Identity;
  logger: Logger;
}): Promise<EventConsumer> {
  const { broker, graph, subscriptions, identity, logger } = deps;
  const handle = async (event: CanonicalEvent) => {
    const crm = event.data as CrmSubscription;
    if (!crm.customerId || crm.deleted) return;
    const reply = await graph.request<{ customer: { billingSchedules: Billed[] | null } | null }>(
      BILLED,
      { customer: crm.customerId },
      event.correlationid,
    );
    // The ERP did not answer: not acknowledged, the event comes again.
    if (!reply.data?.customer) throw new Error(`billing of customer ${crm.customerId} could not be read`);
    const billed = reply.data.customer.billingSchedules?.find((schedule) => schedule.subscriptionId === crm.subscriptionId) ?? null;
    const change = changeAsked(crm, billed);
    if (!change) return;
    const outcome = await subscriptions.apply(
      { subscriptionId: crm.subscriptionId, change, idempotencyKey: `crm-event:${event.id}` },
      identity,
      event.correlationid,
    );
    logger.info(
      {
        event: 'subscription.change_from_crm',
        subscriptionId: crm.subscriptionId,
        change,
        workflowId: outcome.workflowId,
        errors: outcome.errors.map((error) => error.code),
        correlationId: event.correlationid,
      },
      'subscription change started by a CRM change',
    );
  };
  return broker.consume({ name: 'processes-crm-subscriptions', types: 'concord.subscription.updated', startAt: 'new' }, handle);
}
