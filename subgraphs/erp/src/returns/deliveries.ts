import type { OutboxHandler } from '../../../../platform/outbox.ts';
import type { ServiceClient } from '../../../../platform/service-client.ts';
import { OUTBOX_KINDS } from './process.ts';

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

/**
 * How each follow-on write of the return process is delivered: as the integration identity,
 * through the graph, to the system that owns the record. Each carries its own idempotency key,
 * so a delivery retried after an unclear failure changes nothing twice. A reply with errors,
 * or without the record, is a failure to retry.
 */
export function returnDeliveries(graph: ServiceClient): Record<string, OutboxHandler> {
  const deliver = (mutation: string, field: string) => async (payload: unknown, entry: { correlationId: string | null }) => {
    const reply = await graph.request<Record<string, unknown>>(mutation, { input: payload }, entry.correlationId ?? 'outbox');
    if (reply.errors?.length) {
      throw new Error(`${field}: ${reply.errors.map((error) => `${error.extensions?.code ?? 'ERROR'} ${error.message}`).join('; ')}`);
    }
    if (!reply.data?.[field]) throw new Error(`${field}: the record it updates does not exist`);
  };
  return {
    [OUTBOX_KINDS.caseUpdate]: deliver(RECORD_CASE_UPDATE, 'recordCaseUpdate'),
    [OUTBOX_KINDS.crmActivity]: deliver(LOG_CUSTOMER_ACTIVITY, 'logCustomerActivity'),
  };
}
