import type { EventBroker } from '../../../../platform/events/broker.ts';
import type { CanonicalEvent, EventDraft } from '../../../../platform/events/cloudevent.ts';
import { InvalidEventError } from '../../../../platform/events/schemas.ts';
import { sourceEvent } from '../../../../platform/events/source.ts';
import type { RawRoute } from '../../../../platform/http-server.ts';
import type { Logger } from '../../../../platform/logger.ts';
import { accepted, badRequest, checkSignature, jsonBody, tryAgain } from '../../../../platform/webhooks.ts';
import type { CrmConnector } from '../connectors/types.ts';
import {
  accountUpdated,
  contactUpdated,
  contractUpdated,
  customerUpdated,
  opportunityUpdated,
  subscriptionDeleted,
  subscriptionUpdated,
  type ChangeFacts,
} from './events.ts';

/** The objects whose change events become canonical events; others (User, Lead, Task, …) are acknowledged and left. */
const ENTITIES = ['Account', 'Contact', 'Contract', 'Opportunity', 'Subscription__c'] as const;
type Entity = (typeof ENTITIES)[number];

/** One Change Data Capture event, as far as the feed reads it. */
interface ChangeEvent {
  readonly entity: string;
  readonly changeType: string;
  readonly recordIds: readonly string[];
  readonly changedFields: readonly string[];
  /** The commit number, or else the commit time in ms: the version of the events it causes. */
  readonly version: number;
  readonly at: Date;
  readonly transactionKey: string | undefined;
}

/**
 * `POST /hooks/salesforce`: Salesforce Change Data Capture events as a relay (a Pub/Sub API
 * subscriber, or a Flow callout) forwards them, one event or an array, signed like Zendesk's
 * webhooks: `X-Concord-Signature` is base64(HMAC-SHA256(secret, timestamp + body)) with the
 * timestamp in `X-Concord-Signature-Timestamp` (Salesforce itself has no signed HTTP push).
 *
 * A change event names records by their Salesforce Ids and carries only the fields that changed,
 * so the records are read from the org through the connector, one query per object for all the
 * Ids of the notice, for their canonical keys (an account's customer number) and state. Each
 * record changed becomes a canonical event whose version is the event's commit number (else its
 * commit time), so the same notice told twice is stored once. A DELETE carries no fields: the
 * event says what is known (the Id), and a deleted contract, whose number is not known, is told
 * by nothing. A notice with a bad signature is refused (401) and one that is not change events
 * (400) publishes nothing; one whose records cannot be read, or that the broker does not take,
 * is answered 503 for the relay to send again.
 */
export function salesforceHook(deps: {
  readonly secret: string;
  readonly connector: CrmConnector;
  readonly broker: EventBroker;
  readonly source: string;
  readonly logger: Logger;
}): RawRoute {
  const { connector, broker, logger, source } = deps;
  return async (request) => {
    const checked = checkSignature(deps.secret, request, 'x-concord-signature', 'x-concord-signature-timestamp');
    if ('status' in checked) {
      logger.warn('salesforce change events refused: the signature or its timestamp does not check');
      return checked;
    }
    const body = jsonBody(request.body);
    if (!body) return badRequest('the body is not JSON');
    const parsed = parseEvents(Array.isArray(body) ? body : [body]);
    if (typeof parsed === 'string') return badRequest(parsed);

    let drafts: { draft: EventDraft; event: ChangeEvent }[];
    try {
      drafts = await draftsOf(parsed, connector, logger);
    } catch (error) {
      logger.warn({ err: error }, 'salesforce change events not published: the org could not be read');
      return tryAgain('the CRM could not be read; send the events again');
    }
    const events: CanonicalEvent[] = [];
    for (const { draft, event } of drafts) {
      try {
        events.push(sourceEvent(draft, { source, version: event.version, at: event.at, correlationId: event.transactionKey }));
      } catch (error) {
        if (!(error instanceof InvalidEventError)) throw error;
        logger.error({ err: error, entity: event.entity, type: draft.type }, 'salesforce change event left out: it makes no valid event');
      }
    }
    try {
      if (events.length) await broker.publish(events);
    } catch (error) {
      logger.warn({ err: error, events: events.length }, 'salesforce change events not published: the broker did not take them');
      return tryAgain('the events could not be published; send them again');
    }
    logger.info({ received: parsed.length, published: events.length }, 'salesforce change events published');
    return accepted(events.length);
  };
}

/** The change events of a notice, or what is wrong with it. */
function parseEvents(items: readonly unknown[]): ChangeEvent[] | string {
  const events: ChangeEvent[] = [];
  for (const item of items) {
    const header = (item as { ChangeEventHeader?: Record<string, unknown> } | null)?.ChangeEventHeader;
    if (!header || typeof header.entityName !== 'string' || typeof header.changeType !== 'string' || !Array.isArray(header.recordIds))
      return 'expected Change Data Capture events: a ChangeEventHeader with entityName, changeType and recordIds';
    const commitNumber = Number(header.commitNumber);
    const commitTimestamp = Number(header.commitTimestamp);
    const version = Number.isSafeInteger(commitNumber) && commitNumber > 0 ? commitNumber : commitTimestamp;
    if (!Number.isSafeInteger(version) || version <= 0) return 'a ChangeEventHeader needs its commitNumber or commitTimestamp';
    events.push({
      entity: header.entityName,
      changeType: header.changeType,
      recordIds: header.recordIds.filter((id): id is string => typeof id === 'string' && id !== ''),
      changedFields: Array.isArray(header.changedFields) ? header.changedFields.filter((field) => typeof field === 'string') : [],
      version,
      at: Number.isSafeInteger(commitTimestamp) && commitTimestamp > 0 ? new Date(commitTimestamp) : new Date(),
      transactionKey: typeof header.transactionKey === 'string' && header.transactionKey ? header.transactionKey : undefined,
    });
  }
  return events;
}

const isEntity = (name: string): name is Entity => (ENTITIES as readonly string[]).includes(name);
// GAP_ events lost their fields (too large, or an internal error): the record is read as for an update.
const isDelete = (event: ChangeEvent) => event.changeType === 'DELETE' || event.changeType === 'GAP_DELETE';

/** The canonical events of the change events, the records read once per object. */
async function draftsOf(
  events: readonly ChangeEvent[],
  connector: CrmConnector,
  logger: Logger,
): Promise<{ draft: EventDraft; event: ChangeEvent }[]> {
  const wanted = new Map<Entity, Set<string>>(ENTITIES.map((entity) => [entity, new Set<string>()]));
  for (const event of events) {
    if (!isEntity(event.entity) || isDelete(event)) continue;
    for (const id of event.recordIds) wanted.get(event.entity)!.add(id);
  }
  const ids = (entity: Entity) => [...wanted.get(entity)!];
  const read = async <T>(entity: Entity, fetch: (ids: string[]) => Promise<T[]>, keyOf: (record: T) => string) =>
    new Map((ids(entity).length ? await fetch(ids(entity)) : []).map((record) => [keyOf(record), record]));
  const [accounts, contacts, contracts, opportunities, subscriptions] = await Promise.all([
    read(
      'Account',
      (keys) => connector.accountsByIds(keys),
      (record) => record.id,
    ),
    read(
      'Contact',
      (keys) => connector.contactsByIds(keys),
      (record) => record.id,
    ),
    read(
      'Contract',
      (keys) => connector.contractsByCrmIds(keys),
      (record) => record.crmId,
    ),
    read(
      'Opportunity',
      (keys) => connector.opportunitiesByIds(keys),
      (record) => record.id,
    ),
    read(
      'Subscription__c',
      (keys) => connector.subscriptionsByIds(keys),
      (record) => record.id,
    ),
  ]);

  const drafts: { draft: EventDraft; event: ChangeEvent }[] = [];
  for (const event of events) {
    if (!isEntity(event.entity)) continue;
    if (event.changeType === 'GAP_OVERFLOW' || event.recordIds.length === 0) {
      logger.warn({ entity: event.entity, changeType: event.changeType }, 'salesforce change event names no records: nothing to tell');
      continue;
    }
    const deleted = isDelete(event);
    const facts: ChangeFacts = { changes: event.changeType === 'UPDATE' ? event.changedFields : undefined, deleted };
    const add = (draft: EventDraft) => drafts.push({ draft, event });
    for (const id of event.recordIds) {
      switch (event.entity) {
        case 'Account': {
          const account = deleted ? undefined : accounts.get(id);
          if (account?.customerId) add(customerUpdated(account.customerId, facts.changes));
          // A prospect, an account that was just given its number, and one deleted or not readable: the account.
          if (!account?.customerId || facts.changes?.includes('AccountNumber'))
            add(
              accountUpdated(
                account ? { accountId: id, customerId: account.customerId, onboardingStatus: account.onboardingStatus } : { accountId: id },
                facts,
              ),
            );
          break;
        }
        case 'Contact':
          add(contactUpdated(id, deleted ? undefined : contacts.get(id)?.customerId, facts));
          break;
        case 'Contract': {
          const contract = contracts.get(id);
          if (contract) add(contractUpdated(contract, facts));
          else
            logger.warn({ contractId: id, changeType: event.changeType }, 'salesforce contract change not told: its number is not known');
          break;
        }
        case 'Opportunity':
          add(opportunityUpdated((!deleted && opportunities.get(id)) || { id }, facts));
          break;
        case 'Subscription__c': {
          const subscription = subscriptions.get(id);
          if (subscription) add(subscriptionUpdated(subscription, facts));
          else if (deleted) add(subscriptionDeleted(id));
          else logger.warn({ subscriptionId: id }, 'salesforce subscription change not told: the subscription could not be read');
          break;
        }
      }
    }
  }
  return drafts;
}
